"""The note samples abcjs plays generated songs with, synthesised here so that playback needs no outside site.

abcjs fetches ``<soundFontUrl><instrument>-mp3/<note>.mp3`` and hands the bytes to the browser's audio decoder,
which reads the format from the data itself, so a WAV body serves as well as an MP3 one.
"""

import io
import math
import re
import wave
from functools import lru_cache

import numpy as np
from django.http import Http404, HttpResponse

NOTE = re.compile(r"^(?P<letter>[A-G])(?P<flat>b?)(?P<octave>-?[0-9])$")
SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
RATE = 22050
SECONDS = 1.6


def midi_number(note: str) -> int | None:
    match = NOTE.match(note)
    if not match:
        return None
    number = (int(match["octave"]) + 1) * 12 + SEMITONES[match["letter"]] - (1 if match["flat"] else 0)
    return number if 21 <= number <= 108 else None


@lru_cache(maxsize=128)
def note_wav(number: int) -> bytes:
    """A plucked, piano-like tone: a few decaying harmonics with a short attack, 16-bit mono WAV."""
    frequency = 440.0 * 2 ** ((number - 69) / 12)
    t = np.arange(int(RATE * SECONDS)) / RATE
    tone = sum(
        (0.6**k) * np.sin(2 * math.pi * frequency * (k + 1) * t) * np.exp(-t * (2.5 + 1.5 * k))
        for k in range(4)
        if frequency * (k + 1) < RATE / 2
    )
    tone *= np.minimum(1.0, t / 0.005)
    samples = (tone / max(1e-9, float(np.max(np.abs(tone)))) * 0.8 * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def note_sample(request, instrument: str, note: str):
    number = midi_number(note)
    if number is None or not re.fullmatch(r"[a-z0-9_]{1,40}", instrument):
        raise Http404
    response = HttpResponse(note_wav(number), content_type="audio/wav")
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


note_sample.access_rule = ("public", ())
