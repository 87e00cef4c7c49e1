"""Ready-made training set-ups that exercise acc on real data (CPU, seconds)."""

from acc.recipes.competitive import (
    FEATURE_PARAM,
    CompetitiveFeatures,
    CompetitiveRecipe,
    competitive_trainer,
    control_trainer,
)

__all__ = ["FEATURE_PARAM", "CompetitiveFeatures", "CompetitiveRecipe", "competitive_trainer", "control_trainer"]
