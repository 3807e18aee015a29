"""What happens to decoded text before anyone sees it, and what the decoder is told first.

``TextRules`` joins the features of this package for the workflow: the user's
replacements and near misses of their words (``vocabulary.py``, ``nearmiss.py``), then
spoken commands (``commands.py``) in the language being dictated; and for the decoder,
the command words and the user's words. The features are pure functions over text; this
class picks the table.
"""

from __future__ import annotations

import logging
from pathlib import Path

from v2md.config import CommandsConfig
from v2md.text import commands
from v2md.text.nearmiss import Lexicon
from v2md.text.vocabulary import Vocabulary

log = logging.getLogger(__name__)


class TextRules:
    """Commands for the dictation's language, and the prompt that helps Whisper hear them."""

    def __init__(
        self,
        cfg: CommandsConfig,
        config_dir: Path,
        vocabulary: Vocabulary,
        lexicon: Lexicon | None = None,
    ) -> None:
        self._cfg = cfg
        self.vocabulary = vocabulary
        # The words the decoder writes whole: never near misses (nearmiss.py).
        self._lexicon = lexicon or Lexicon()
        self._tables = commands.Tables(config_dir / "commands")
        self._heard = ""  # the language the last decode was in, where Language is auto

    def language_heard(self, code: str) -> None:
        self._heard = code

    def _table(self, language: str) -> commands.Table | None:
        if not self._cfg.enabled:
            return None
        return self._tables.get(self._heard if language == "auto" else language)

    def prompt(self, language: str) -> str:
        """Words for the decoder's prompt before speech in ``language``."""
        table = self._table(language)
        said = table.prompt if table is not None else ""
        return " ".join(p for p in (said, self.vocabulary.prompt()) if p)

    def final(self, text: str, language: str) -> str:
        """Final or provisional text as the user gets it."""
        text = self.vocabulary.correct(self.vocabulary.replace(text), self._lexicon)
        table = self._table(language)
        return commands.apply(text, table, self._lexicon) if table is not None else text
