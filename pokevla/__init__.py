"""PokeVLA: a pocket-sized vision-language-action model for robot manipulation."""

__version__ = "0.1.0"
