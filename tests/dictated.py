"""Dictated sentences with spoken commands, and prose that uses the command words as words.

Each command sentence is spoken by espeak-ng with a short pause (a comma in its
input) before each command, as a person dictating pauses; the value is exactly
the text the user should get. The prose is spoken as written and must come back
with every command word still a word.
"""

from __future__ import annotations

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
