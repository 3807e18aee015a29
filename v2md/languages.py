"""The languages v2m knows: the codes Whisper transcribes, with their English names.

One table serves both jobs. A dictation is transcribed in one of its codes ([whisper]
language, the Language property; "auto" lets Whisper detect it), and a translation
names one of its languages as the target: the LLM is told the English name ("German"),
which every model understands better than a code. So whatever was dictated can also
be a target.
"""

from __future__ import annotations

from v2md.errors import InvalidArgumentError, shown

AUTO = "auto"  # Whisper detects the language of each dictation

# Whisper's codes: ISO 639-1 where the language has one.
LANGUAGE_NAMES: dict[str, str] = {
    "af": "Afrikaans", "am": "Amharic", "ar": "Arabic", "as": "Assamese", "az": "Azerbaijani",
    "ba": "Bashkir", "be": "Belarusian", "bg": "Bulgarian", "bn": "Bengali", "bo": "Tibetan",
    "br": "Breton", "bs": "Bosnian", "ca": "Catalan", "cs": "Czech", "cy": "Welsh",
    "da": "Danish", "de": "German", "el": "Greek", "en": "English", "es": "Spanish",
    "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fo": "Faroese",
    "fr": "French", "gl": "Galician", "gu": "Gujarati", "ha": "Hausa", "haw": "Hawaiian",
    "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "ht": "Haitian Creole", "hu": "Hungarian",
    "hy": "Armenian", "id": "Indonesian", "is": "Icelandic", "it": "Italian", "ja": "Japanese",
    "jw": "Javanese",  "ka": "Georgian", "kk": "Kazakh", "km": "Khmer",
    "kn": "Kannada", "ko": "Korean", "la": "Latin", "lb": "Luxembourgish", "ln": "Lingala",
    "lo": "Lao", "lt": "Lithuanian", "lv": "Latvian", "mg": "Malagasy", "mi": "Maori",
    "mk": "Macedonian", "ml": "Malayalam", "mn": "Mongolian", "mr": "Marathi", "ms": "Malay",
    "mt": "Maltese", "my": "Burmese", "ne": "Nepali", "nl": "Dutch", "nn": "Norwegian Nynorsk",
    "no": "Norwegian", "oc": "Occitan", "pa": "Punjabi", "pl": "Polish", "ps": "Pashto",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sa": "Sanskrit", "sd": "Sindhi",
    "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian", "sn": "Shona", "so": "Somali",
    "sq": "Albanian", "sr": "Serbian", "su": "Sundanese", "sv": "Swedish", "sw": "Swahili",
    "ta": "Tamil", "te": "Telugu", "tg": "Tajik", "th": "Thai", "tk": "Turkmen",
    "tl": "Tagalog", "tr": "Turkish", "tt": "Tatar", "uk": "Ukrainian", "ur": "Urdu",
    "uz": "Uzbek", "vi": "Vietnamese", "yi": "Yiddish", "yo": "Yoruba", "yue": "Cantonese",
    "zh": "Chinese",
}  # fmt: skip

# ISO 639-1 codes Whisper spells otherwise: accepted, and stored as Whisper's.
_ALIASES = {"jv": "jw"}
_BY_NAME = {name.lower(): name for name in LANGUAGE_NAMES.values()}


def validate_language(code: str) -> str:
    """The code to transcribe in, normalised ("auto" or a table code), or ValueError
    naming what was given."""
    norm = code.strip().lower()
    norm = _ALIASES.get(norm, norm)
    if norm != AUTO and norm not in LANGUAGE_NAMES:
        raise ValueError(f"unknown language code {shown(code)}: use 'auto' or an ISO 639-1 code")
    return norm


def check_language_for_model(code: str, *, english_only: bool) -> None:
    """Raise ValueError when an English-only model is asked for another language."""
    if english_only and code not in (AUTO, "en"):
        raise ValueError(
            f"the Whisper model is English-only and cannot transcribe {code!r}: set "
            "[whisper] model to a multilingual model such as 'base' or 'small' for other "
            "languages, or the language to 'en' or 'auto'"
        )


def language_name(target: str) -> str:
    """The English name of a translation target: a code ("de") or a name in any case
    ("german"); InvalidArgumentError otherwise."""
    key = target.strip().lower()
    name = LANGUAGE_NAMES.get(_ALIASES.get(key, key)) or _BY_NAME.get(key)
    if name is None:
        raise InvalidArgumentError(
            f"unknown target language {target!r}: use an ISO 639-1 code such as 'de' "
            "or an English language name such as 'German'"
        )
    return name
