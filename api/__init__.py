"""The Experience API (``cxstream serve``) and the agent desktop page it serves."""
