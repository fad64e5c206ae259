"""Intake's learned category classifier (docs/classification.md): a static embedding table distilled
from a packaged e5 model, TF-IDF features, a logistic regression, and the tools around them."""
