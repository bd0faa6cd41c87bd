"""The data layer: the training text (``text``) and collections of short documents (``collection``)."""
