import pytest

from musicrec.text import clean_name, match_key, spotify_track_uri, track_key


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Hello \t  World ", "Hello World"),
        ("Ｔｅｓｔ", "Test"),  # full-width letters fold under NFKC
        ("ﬁre", "fire"),  # ligature
    ],
)
def test_clean_name(raw: str, expected: str) -> None:
    assert clean_name(raw) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Lose Control (feat. Ciara & Fat Man Scoop)", "lose control"),
        ("Sk8er Boi - Remastered 2011", "SK8ER BOI"),
        ("Beyoncé", "Beyonce"),
        ("Locked Out of Heaven", "Locked  Out Of Heaven!"),
        ("Hello ft. Someone", "Hello"),
        ("Don't Stop Me Now - Live", "Dont Stop Me Now"),
    ],
)
def test_match_key_equates_spellings(a: str, b: str) -> None:
    assert match_key(a) == match_key(b)


def test_match_key_keeps_distinct_names_apart() -> None:
    assert match_key("Hello") != match_key("Hello Again")
    # Non-Latin scripts survive (diacritics fold everywhere alike: й → и).
    assert match_key("Мумий Тролль") == "мумиитролль"
    assert match_key("宇多田ヒカル") == "宇多田ヒカル"


def test_track_key_combines_artist_and_title() -> None:
    assert track_key("Bruno Mars", "Locked Out Of Heaven") == "brunomars|lockedoutofheaven"


@pytest.mark.parametrize(
    "raw",
    [
        "4GiXBCUF7H6YfNQsnBRIzl",
        "spotify:track:4GiXBCUF7H6YfNQsnBRIzl",
        "https://open.spotify.com/track/4GiXBCUF7H6YfNQsnBRIzl?si=abc",
    ],
)
def test_spotify_track_uri(raw: str) -> None:
    assert spotify_track_uri(raw) == "spotify:track:4GiXBCUF7H6YfNQsnBRIzl"
