"""The real data formats, read into (and written from) `FrameRecord`s: nothing here knows about the store."""
