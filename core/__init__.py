"""SceneScope engine: schema, data, models, index, voting, evaluation, video, tokens, training."""

__version__ = "0.1.0"
