"""One page per stage of the journey."""
