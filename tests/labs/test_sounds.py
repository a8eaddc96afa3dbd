"""The note samples for song playback are served by the site itself."""

import io
import wave

import pytest

from labs.sounds import midi_number


@pytest.mark.parametrize(("note", "number"), [("A0", 21), ("C4", 60), ("Db4", 61), ("A4", 69), ("Bb7", 106)])
def test_note_names_as_abcjs_writes_them_map_to_midi_numbers(note, number):
    assert midi_number(note) == number


def test_a_note_is_a_short_mono_wav_anyone_may_fetch(client):
    response = client.get("/sounds/acoustic_grand_piano-mp3/A4.mp3")
    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as sound:
        assert (sound.getnchannels(), sound.getframerate()) == (1, 22050)
        assert 1.0 < sound.getnframes() / sound.getframerate() < 2.0


@pytest.mark.parametrize(
    "path", ["acoustic_grand_piano-mp3/H4.mp3", "acoustic_grand_piano-mp3/C99.mp3", "..-mp3/C4.mp3"]
)
def test_anything_but_a_note_is_not_found(client, path):
    assert client.get(f"/sounds/{path}").status_code == 404
