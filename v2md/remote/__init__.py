"""Speech to text on a server of the user's own: OpenAI-compatible and Wyoming."""
