"""Dictated sentences with spoken commands, prose that uses the command words as words, and
sentences with made-up names; how a decode of them is scored.

Each command sentence is spoken by espeak-ng with a short pause (a comma in its
input) before each command, as a person dictating pauses; the value is exactly
the text the user should get. The prose is spoken as written and must come back
with every command word still a word. English is ``COMMANDS`` and ``PROSE``; each
language of ``v2md/data/commands`` has its own in ``COMMANDS_BY_LANGUAGE`` and
``PROSE_BY_LANGUAGE``, spoken by espeak-ng's voice for it (``VOICES``). Used by
tests/test_commands_live.py, tests/test_vocabulary_live.py and
benchmarks/commands_bench.py.
"""

from __future__ import annotations

import re

import speech

from v2md.text.commands import load_table

# (what is spoken, what the user gets)
COMMANDS = (
    ("Thanks, comma, see you on Monday, period.", "Thanks, see you on Monday."),
    ("Is the meeting at noon, question mark.", "Is the meeting at noon?"),
    ("We won the game, exclamation mark.", "We won the game!"),
    ("Please buy milk, comma, bread, and eggs, period.", "Please buy milk, bread, and eggs."),
    ("The answer is simple, colon, work hard, period.", "The answer is simple: work hard."),
    ("Bring apples, semicolon, the rest can wait, period.", "Bring apples; the rest can wait."),
    ("He said, open quote, hello, close quote, and left, period.", "He said “hello” and left."),
    (
        "The price, open bracket, in dollars, close bracket, is fixed, period.",
        "The price (in dollars) is fixed.",
    ),
    (
        "Hello Anna, comma, new paragraph, thank you for the report, period.",
        "Hello Anna,\n\nThank you for the report.",
    ),
    (
        "The first item is done, period, new line, the second item is next, period.",
        "The first item is done.\nThe second item is next.",
    ),
    ("I will be late, scratch that, I will be early, period.", "I will be early."),
    ("Can you call me tomorrow, question mark.", "Can you call me tomorrow?"),
    ("The children played in the garden, period.", "The children played in the garden."),
    (
        "Send the file, comma, and wait for my answer, period.",
        "Send the file, and wait for my answer.",
    ),
    ("What time is it, question mark.", "What time is it?"),
    ("This is great news, exclamation mark.", "This is great news!"),
    (
        "Please note, colon, the office is closed on Friday, period.",
        "Please note: the office is closed on Friday.",
    ),
    (
        "We need many things, colon, time, comma, money, comma, and people, period.",
        "We need many things: time, money, and people.",
    ),
    (
        "The train leaves at noon, period, new paragraph, see you there, period.",
        "The train leaves at noon.\n\nSee you there.",
    ),
    (
        "She told me, open quote, the door is open, close quote, period.",
        "She told me “the door is open”.",
    ),
    ("Call the doctor, semicolon, she is at home, period.", "Call the doctor; she is at home."),
    (
        "The meeting is moved, scratch that, the meeting is cancelled, period.",
        "The meeting is cancelled.",
    ),
    ("Good morning, comma, everyone, period.", "Good morning, everyone."),
    ("Where is the station, question mark.", "Where is the station?"),
    ("Thank you very much, exclamation mark.", "Thank you very much!"),
    (
        "The list is long, period, new line, start with the first item, period.",
        "The list is long.\nStart with the first item.",
    ),
    (
        "Our budget, open bracket, for this year, close bracket, is approved, period.",
        "Our budget (for this year) is approved.",
    ),
    ("Please call me after lunch, period.", "Please call me after lunch."),
    ("Do you like coffee, question mark.", "Do you like coffee?"),
    ("The room is ready, comma, the food is here, period.", "The room is ready, the food is here."),
    (
        "Remember this, colon, always check your work, period.",
        "Remember this: always check your work.",
    ),
    ("The sun is up, semicolon, the sky is blue, period.", "The sun is up; the sky is blue."),
    ("Open the window, scratch that, close the window, period.", "Close the window."),
    ("See you soon, comma, new line, John, period.", "See you soon,\nJohn."),
    ("How are you, question mark, new paragraph, I am fine, period.", "How are you?\n\nI am fine."),
    (
        "That was close, exclamation mark, new line, we made it, period.",
        "That was close!\nWe made it.",
    ),
    (
        "The word, open quote, dog, close quote, has three letters, period.",
        "The word “dog” has three letters.",
    ),
    ("Dinner is ready, comma, lunch was good, period.", "Dinner is ready, lunch was good."),
    ("Let me think, period, scratch that, I know the answer, period.", "I know the answer."),
    ("Tomorrow we travel to the coast, period.", "Tomorrow we travel to the coast."),
    ("Are you coming to the party, question mark.", "Are you coming to the party?"),
    ("The door is open, semicolon, come in, period.", "The door is open; come in."),
)

# Every English command word used as a word, and the words that must survive.
PROSE = (
    ("The trial period ends on Friday.", "period"),
    ("Please use a comma separated list.", "comma"),
    ("The car came to a full stop at the light.", "full stop"),
    ("Each period of the game lasts twenty minutes.", "period"),
    ("She put a comma after the greeting.", "comma"),
    ("The new line of products launches in May.", "new line"),
    ("There is a question mark over his future.", "question mark"),
    ("Every new paragraph should start with a clear sentence.", "new paragraph"),
    ("The colon and the semicolon look alike.", "colon"),
    ("That period was the happiest time of my life.", "period"),
    ("The exclamation mark is used too often.", "exclamation mark"),
    ("After a short period we went home.", "period"),
    ("Type an open quote before the title.", "open quote"),
    ("The open bracket must match the close bracket.", "open bracket"),
    ("We talked about the trial period.", "period"),
    ("A semicolon joins two sentences.", "semicolon"),
)

# Spanish, German, French and Italian, each with the commands of its table. Decoded by the
# multilingual base model with the language set; spoken at WORDS_PER_MINUTE (espeak-ng's
# voices of these languages at 160 lost up to half the words to base: tests/test_multilingual.py).
COMMANDS_ES = (
    ("Gracias, coma, nos vemos el lunes, punto.", "Gracias, nos vemos el lunes."),
    (
        "La reunión es a las diez, punto, nuevo párrafo, trae el informe, punto.",
        "La reunión es a las diez.\n\nTrae el informe.",
    ),
    ("Compra leche, coma, pan y huevos, punto.", "Compra leche, pan y huevos."),
    (
        "La respuesta es sencilla, dos puntos, trabaja mucho, punto.",
        "La respuesta es sencilla: trabaja mucho.",
    ),
    ("Llegaré tarde, borra eso, llegaré temprano, punto.", "Llegaré temprano."),
    (
        "Abrir interrogación, dónde está la estación, cierra interrogación.",
        "¿Dónde está la estación?",
    ),
    (
        "Ella dijo, abrir comillas, hola, cerrar comillas, y se fue, punto.",
        "Ella dijo «hola» y se fue.",
    ),
    (
        "El precio, abrir paréntesis, en euros, cerrar paréntesis, es fijo, punto.",
        "El precio (en euros) es fijo.",
    ),
    (
        "La casa es grande, punto y coma, el jardín es pequeño, punto.",
        "La casa es grande; el jardín es pequeño.",
    ),
    ("Hola María, coma, nueva línea, gracias por todo, punto.", "Hola María,\nGracias por todo."),
)
PROSE_ES = (
    ("Es mi punto de vista.", "punto"),
    ("Pon una coma después del saludo.", "coma"),
    ("El paciente estuvo en coma dos semanas.", "coma"),
    ("Ese punto final cierra el capítulo.", "punto final"),
    ("Abrimos una nueva línea de productos en mayo.", "nueva línea"),
    ("Los dos puntos del acuerdo están claros.", "dos puntos"),
    ("Desde este punto se ve el mar.", "punto"),
    ("Escribe cada nuevo párrafo con cuidado.", "nuevo párrafo"),
)

COMMANDS_DE = (
    ("Danke, Komma, bis Montag, Punkt.", "Danke, bis Montag."),
    ("Kommst du morgen, Fragezeichen.", "Kommst du morgen?"),
    ("Wir haben gewonnen, Ausrufezeichen.", "Wir haben gewonnen!"),
    (
        "Die Antwort ist einfach, Doppelpunkt, arbeite hart, Punkt.",
        "Die Antwort ist einfach: arbeite hart.",
    ),
    ("Ich komme später, streich das, ich komme früher, Punkt.", "Ich komme früher."),
    (
        "Er sagte, Anführungszeichen auf, hallo, Anführungszeichen zu, und ging, Punkt.",
        "Er sagte „hallo“ und ging.",
    ),
    (
        "Der Preis, Klammer auf, in Euro, Klammer zu, ist fest, Punkt.",
        "Der Preis (in Euro) ist fest.",
    ),
    (
        "Hallo Anna, Komma, neuer Absatz, danke für den Bericht, Punkt.",
        "Hallo Anna,\n\nDanke für den Bericht.",
    ),
    (
        "Das Haus ist groß, Semikolon, der Garten ist klein, Punkt.",
        "Das Haus ist groß; der Garten ist klein.",
    ),
    (
        "Die Arbeit ist fertig, Punkt, neue Zeile, morgen geht es weiter, Punkt.",
        "Die Arbeit ist fertig.\nMorgen geht es weiter.",
    ),
)
PROSE_DE = (
    ("Das ist ein wichtiger Punkt für uns.", "Punkt"),
    ("Hier fehlt ein Komma im Satz.", "Komma"),
    ("Er setzte ein Fragezeichen hinter den Plan.", "Fragezeichen"),
    ("Auf der nächsten Seite beginnt ein neuer Absatz.", "neuer Absatz"),
    ("Der Doppelpunkt steht vor der Liste.", "Doppelpunkt"),
    ("Wir treffen uns um Punkt acht Uhr.", "Punkt"),
    ("Ein Ausrufezeichen zeigt die Freude.", "Ausrufezeichen"),
    ("Jeder Punkt auf der Liste ist erledigt.", "Punkt"),
)

# French sets a narrow no-break space (U+202F) before ? ! : ; and inside guillemets.
COMMANDS_FR = (
    ("Merci, virgule, à lundi, point.", "Merci, à lundi."),
    ("Tu viens demain, point d'interrogation.", "Tu viens demain\u202f?"),
    ("Nous avons gagné, point d'exclamation.", "Nous avons gagné\u202f!"),
    (
        "La réponse est simple, deux points, travaille bien, point.",
        "La réponse est simple\u202f: travaille bien.",
    ),
    ("Je serai en retard, efface ça, je serai en avance, point.", "Je serai en avance."),
    (
        "Il a dit, ouvrez les guillemets, bonjour, fermez les guillemets, et il est parti, point.",
        "Il a dit «\u202fbonjour\u202f» et il est parti.",
    ),
    (
        "Le prix, ouvrez la parenthèse, en euros, fermez la parenthèse, est fixe, point.",
        "Le prix (en euros) est fixe.",
    ),
    (
        "Bonjour Anne, virgule, nouveau paragraphe, merci pour le rapport, point.",
        "Bonjour Anne,\n\nMerci pour le rapport.",
    ),
    (
        "La maison est grande, point-virgule, le jardin est petit, point.",
        "La maison est grande\u202f; le jardin est petit.",
    ),
    (
        "Le travail est fini, point, à la ligne, demain on continue, point.",
        "Le travail est fini.\nDemain on continue.",
    ),
)
PROSE_FR = (
    ("Ce point est important pour nous.", "point"),
    ("Il faut une virgule après le mot.", "virgule"),
    ("Nous sommes au point de départ.", "point"),
    ("Mettez les deux points sur la carte.", "deux points"),
    ("Chaque nouveau paragraphe commence par une idée.", "nouveau paragraphe"),
    ("Le point d'exclamation marque la surprise.", "point d'exclamation"),
    ("Il n'a pas compris mon point de vue.", "point"),
    ("Elle attend sur la ligne de départ.", "ligne"),
)

COMMANDS_IT = (
    ("Grazie, virgola, a lunedì, punto.", "Grazie, a lunedì."),
    ("Vieni domani, punto interrogativo.", "Vieni domani?"),
    ("Abbiamo vinto la partita, punto esclamativo.", "Abbiamo vinto la partita!"),
    (
        "La risposta è semplice, due punti, lavora bene, punto.",
        "La risposta è semplice: lavora bene.",
    ),
    ("Arrivo tardi, cancella questo, arrivo presto, punto.", "Arrivo presto."),
    (
        "Lui ha detto, apri virgolette, ciao, chiudi virgolette, ed è uscito, punto.",
        "Lui ha detto «ciao» ed è uscito.",
    ),
    (
        "Il prezzo, apri parentesi, in euro, chiudi parentesi, è fisso, punto.",
        "Il prezzo (in euro) è fisso.",
    ),
    (
        "Ciao Anna, virgola, nuovo paragrafo, grazie per il rapporto, punto.",
        "Ciao Anna,\n\nGrazie per il rapporto.",
    ),
    (
        "La casa è grande, punto e virgola, il giardino è piccolo, punto.",
        "La casa è grande; il giardino è piccolo.",
    ),
    (
        "Il lavoro è finito, punto, a capo, domani continuiamo, punto.",
        "Il lavoro è finito.\nDomani continuiamo.",
    ),
)
PROSE_IT = (
    ("Questo punto è molto importante.", "punto"),
    ("Manca una virgola nella frase.", "virgola"),
    ("Lui è a capo della squadra.", "a capo"),
    ("Ho trovato il punto di domanda nel testo.", "punto di domanda"),
    ("Ogni nuovo paragrafo inizia con una maiuscola.", "nuovo paragrafo"),
    ("Siamo arrivati al punto giusto.", "punto"),
    ("Ci sono due punti da discutere.", "due punti"),
    ("Il punto esclamativo esprime sorpresa.", "punto esclamativo"),
)

COMMANDS_BY_LANGUAGE = {
    "en": COMMANDS,
    "es": COMMANDS_ES,
    "de": COMMANDS_DE,
    "fr": COMMANDS_FR,
    "it": COMMANDS_IT,
}
PROSE_BY_LANGUAGE = {"en": PROSE, "es": PROSE_ES, "de": PROSE_DE, "fr": PROSE_FR, "it": PROSE_IT}
VOICES = {"en": "en-us", "es": "es", "de": "de", "fr": "fr-fr", "it": "it"}
WORDS_PER_MINUTE = {"en": 160, "es": 130, "de": 130, "fr": 130, "it": 130}

# (sentence spoken by espeak-ng, the made-up names and jargon in it), in English.
NAMES = (
    ("Send the report to Zorblax Quintaro.", "Zorblax Quintaro"),
    ("Ask Velmira Droskov about the budget.", "Velmira Droskov"),
    ("The Kubrexa server is down again.", "Kubrexa"),
    ("We deploy with Snarkplex every Monday.", "Snarkplex"),
    ("Our client Quibbleton signed the contract.", "Quibbleton"),
    ("The new Flumitron sensor arrived today.", "Flumitron"),
    ("Meet Yselda Vorhaus at the station.", "Yselda Vorhaus"),
    ("Please restart the Gravimond cluster tonight.", "Gravimond"),
)

# The marks and breaks commands write, in the order the user sees them.
_MARKS = re.compile(r"[.,;:?!“”„«»¿¡()\n]")


def marks(text: str) -> list[str]:
    return _MARKS.findall(text)


def command_words_left(text: str, expected: str, language: str = "en") -> list[str]:
    """Command phrases written out as words where the expected text has none of them."""
    table = load_table(language)
    assert table is not None
    said = " ".join(speech.normalise(text))
    meant = " ".join(speech.normalise(expected))
    phrases = {
        " ".join(speech.normalise(" ".join(c.words)))
        for same in table.commands.values()
        for c in same
    }
    return sorted(p for p in phrases if f" {p} " in f" {said} " and f" {p} " not in f" {meant} ")


def carried_out(text: str, expected: str, language: str = "en") -> bool:
    """Every command did what it says, whatever Whisper made of the other words."""
    return marks(text) == marks(expected) and not command_words_left(text, expected, language)


def name_errors(name: str, text: str) -> int:
    """The words of ``name`` not in ``text`` as written (case and spelling count)."""
    written = set(text.replace(".", " ").replace(",", " ").split())
    return sum(word not in written for word in name.split())


def name_error_rate(texts: list[str]) -> float:
    """Name words wrong, in percent of the name words of NAMES (``texts`` in its order)."""
    words = sum(len(name.split()) for _said, name in NAMES)
    wrong = sum(name_errors(name, text) for (_said, name), text in zip(NAMES, texts, strict=True))
    return 100.0 * wrong / words
