"""Sound in: capture from a device or a file into the engine's ring, the audio
format, recordings and the crash journal."""
