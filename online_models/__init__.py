"""River online models (churn, propensity, segmentation): arriving with issue 5."""
