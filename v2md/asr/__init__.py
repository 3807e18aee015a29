"""Speech to text on this machine: the Whisper worker and its scheduler, models and
downloads, VAD, provisional and final text, file decoding."""
