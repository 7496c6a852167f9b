"""Pure codecs and the shared vocabulary of Ohmni: bytes or JSON in, typed values out.

Nothing here does I/O, starts an event loop or reads a clock, so every other part
(sim, hub, cloud) can rely on the same decoding without pulling in the others.
"""
