"""The web console: a static single-page app (plain ES modules, no build step) served at /console.

It calls the same JSON API as every client (/api/v1, /v2, /v1) with the user's key in an
``Authorization: Bearer`` header; the key lives in the tab's sessionStorage, never in a URL.
"""
