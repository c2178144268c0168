"""Explanations (permutation importance, SHAP) and fairness reports for registered versions."""
