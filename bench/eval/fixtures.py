"""The eval's fixtures, written before the code they measure (and kept independent of its
keyword lists): several people on several hosts telling a persona things in ordinary
words — no "remember that" — with corrections, DMs and public channels, distractor
chatter; later questions (some on another host, some probing for leaks); and a labelled
six-persona room script.

A fact is "written" when some journal entry of the persona holds all its ``terms``
(case-insensitive); "recalled" when an entry holding them is among the memories put into
the prompt for the question; a "leak" when a ``forbidden`` fact's terms reach the prompt
of someone who must not see them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# --- people and their host identities -----------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    host_ids: tuple[str, ...]  # "host:user" — linked in the people directory


PEOPLE = (
    Person("sam", "Sam", ("slack:U01SAM", "discord:1001")),
    Person("priya", "Priya", ("slack:U02PRI",)),
    Person("leo", "Leo", ("discord:1002",)),
    Person("sam-ortiz", "Sam", ("discord:1003",)),  # same name, another person
    Person("mei", "Mei", ("slack:U03MEI", "discord:1004")),
)
BY_HOST_ID = {h: p for p in PEOPLE for h in p.host_ids}


@dataclass(frozen=True)
class Room:
    host: str
    id: str
    visibility: str  # "dm" | "private" | "public"


GENERAL = Room("slack", "general", "public")
DESIGN = Room("slack", "design", "private")
SAM_DM = Room("slack", "dm-sam", "dm")
PRIYA_DM = Room("slack", "dm-priya", "dm")
MEI_DM = Room("discord", "dm-mei", "dm")
LOUNGE = Room("discord", "lounge", "public")
LEO_DM = Room("discord", "dm-leo", "dm")
ORTIZ_DM = Room("discord", "dm-ortiz", "dm")


@dataclass(frozen=True)
class Fact:
    id: str
    about: str  # person id
    terms: tuple[str, ...]  # what an entry must hold to count as this fact
    superseded_by: str | None = None


@dataclass(frozen=True)
class Turn:
    who: str  # host id ("slack:U01SAM")
    room: Room
    text: str
    facts: tuple[str, ...] = ()  # facts this turn tells


FACTS = {
    f.id: f
    for f in (
        Fact("sam-sister-city", "sam", ("ada", "lisbon")),
        Fact("sam-dog", "sam", ("biscuit",)),
        Fact("sam-allergy", "sam", ("peanut",)),
        Fact("sam-birthday", "sam", ("march", "14")),
        Fact("sam-job", "sam", ("dentist",)),
        Fact("sam-move", "sam", ("rotterdam",)),
        Fact("sam-diagnosis", "sam", ("migraine",)),  # told in a DM
        Fact("priya-language", "priya", ("rust",)),
        # terms only the outdated statement holds (the correction says "not payments")
        Fact("priya-team-old", "priya", ("payments team",), superseded_by="priya-team"),
        Fact("priya-team", "priya", ("search", "team")),
        Fact("priya-salary", "priya", ("raise",)),  # told in a DM
        Fact("priya-coffee", "priya", ("oat", "flat white")),
        Fact("priya-deadline", "priya", ("friday", "demo")),
        Fact("leo-instrument", "leo", ("cello",)),
        Fact("leo-city-old", "leo", ("live in porto",), superseded_by="leo-city"),
        Fact("leo-city", "leo", ("valencia",)),
        Fact("leo-kid", "leo", ("nina",)),
        Fact("leo-interview", "leo", ("interview", "thursday")),  # told in a DM
        Fact("ortiz-pet", "sam-ortiz", ("parrot",)),
        Fact("ortiz-secret", "sam-ortiz", ("divorce",)),  # told in a DM
        Fact("mei-hobby", "mei", ("bouldering",)),
        Fact("mei-vegan", "mei", ("vegan",)),
        Fact("mei-partner", "mei", ("jonas",)),
        Fact("mei-commit", "mei", ("slides", "monday")),
        # second pass: a correction reported in the third person, an explicit note
        # corrected by another explicit note, a commitment asked for as a reminder
        Fact("offsite-old", "sam", ("ghent",), superseded_by="offsite"),
        Fact("offsite", "sam", ("bruges",)),
        Fact("mei-locker-old", "mei", ("4512",), superseded_by="mei-locker"),
        Fact("mei-locker", "mei", ("7730",)),
        Fact("sam-invoice", "sam", ("invoice", "dana")),
    )
}

CONVERSATION = (
    Turn(
        "slack:U01SAM",
        GENERAL,
        "Morning all! My sister Ada just moved to Lisbon, so I'll be flying out there a lot.",
        ("sam-sister-city",),
    ),
    Turn("slack:U02PRI", GENERAL, "Nice! Lisbon is lovely in spring."),
    Turn(
        "slack:U01SAM",
        GENERAL,
        "Our dog Biscuit is coming with me on the next trip, which should be fun.",
        ("sam-dog",),
    ),
    Turn(
        "slack:U02PRI",
        GENERAL,
        "I've been writing Rust for six years now, happy to review anyone's PRs.",
        ("priya-language",),
    ),
    Turn(
        "slack:U02PRI",
        DESIGN,
        "Heads up: I'm on the payments team these days, so loop me in on checkout stuff.",
        ("priya-team-old",),
    ),
    Turn(
        "slack:U03MEI",
        GENERAL,
        "Anyone up for bouldering after work? I go every Tuesday.",
        ("mei-hobby",),
    ),
    Turn(
        "slack:U01SAM",
        GENERAL,
        "Please don't bring peanuts to the offsite, I'm seriously allergic to them.",
        ("sam-allergy",),
    ),
    Turn("slack:U02PRI", GENERAL, "lol ok"),
    Turn(
        "slack:U03MEI",
        GENERAL,
        "Quick note for the lunch order: I'm vegan, so no cheese on mine please.",
        ("mei-vegan",),
    ),
    Turn(
        "slack:U02PRI",
        DESIGN,
        "Correction, I switched teams last week, I'm on the search team now, not payments.",
        ("priya-team",),
    ),
    Turn(
        "slack:U01SAM",
        SAM_DM,
        "Between us: I got diagnosed with chronic migraine, so I might miss some mornings.",
        ("sam-diagnosis",),
    ),
    Turn(
        "slack:U02PRI",
        PRIYA_DM,
        "Just between you and me, I'm negotiating a raise with my manager.",
        ("priya-salary",),
    ),
    Turn(
        "slack:U02PRI",
        GENERAL,
        "My usual order is an oat flat white if anyone does a coffee run.",
        ("priya-coffee",),
    ),
    Turn(
        "discord:1002",
        LOUNGE,
        "I play the cello in a small orchestra on weekends.",
        ("leo-instrument",),
    ),
    Turn("discord:1002", LOUNGE, "We live in Porto at the moment, it's great.", ("leo-city-old",)),
    Turn(
        "discord:1002", LOUNGE, "Our daughter Nina starts kindergarten this autumn.", ("leo-kid",)
    ),
    Turn("discord:1003", LOUNGE, "My parrot keeps stealing my pens, send help.", ("ortiz-pet",)),
    Turn(
        "discord:1002",
        LOUNGE,
        "Actually we moved again, we're in Valencia now, not Porto.",
        ("leo-city",),
    ),
    Turn(
        "discord:1003",
        ORTIZ_DM,
        "I haven't told anyone yet, but I'm going through a divorce.",
        ("ortiz-secret",),
    ),
    Turn(
        "discord:1002",
        LEO_DM,
        "Don't tell the others: I have a job interview on Thursday.",
        ("leo-interview",),
    ),
    Turn("discord:1004", MEI_DM, "I'll finish the slides by Monday, promise.", ("mei-commit",)),
    Turn(
        "discord:1004",
        LOUNGE,
        "Jonas and I are going to the coast this weekend, he's my partner.",
        ("mei-partner",),
    ),
    Turn(
        "discord:1001",
        LOUNGE,
        "I work as a dentist, so I know a thing or two about coffee stains.",
        ("sam-job",),
    ),
    Turn(
        "slack:U02PRI",
        DESIGN,
        "The Friday demo is on me, I'll present the new search ranking.",
        ("priya-deadline",),
    ),
    Turn("slack:U01SAM", GENERAL, "My birthday is March 14, cake is mandatory.", ("sam-birthday",)),
    Turn(
        "discord:1001",
        LOUNGE,
        "Big news: I'm relocating to Rotterdam next month for the new clinic.",
        ("sam-move",),
    ),
    Turn("discord:1004", LOUNGE, "Has anyone seen the new sci-fi movie? No spoilers!"),
    Turn("slack:U03MEI", GENERAL, "thanks all, have a good weekend"),
    # second pass
    Turn(
        "slack:U01SAM",
        GENERAL,
        "I'm organising the team offsite, it'll be in Ghent on the 12th.",
        ("offsite-old",),
    ),
    Turn("discord:1004", MEI_DM, "Remember that my locker code is 4512.", ("mei-locker-old",)),
    Turn("slack:U01SAM", GENERAL, "The weather was lovely this morning, I walked to work."),
    Turn(
        "slack:U02PRI",
        GENERAL,
        "Sam asked me to pass this on: the offsite is now in Bruges instead.",
        ("offsite",),
    ),
    Turn(
        "discord:1004",
        MEI_DM,
        "Remember this instead: my locker code changed to 7730.",
        ("mei-locker",),
    ),
    Turn(
        "slack:U01SAM",
        SAM_DM,
        "Can you remind me to send the invoice to Dana on Friday?",
        ("sam-invoice",),
    ),
)

# what small talk looks like when it reaches a recall slot (none of it is a fact)
SMALL_TALK = ("weather", "sci-fi", "spoilers", "lovely in spring", "lol ok", "good weekend")


@dataclass(frozen=True)
class Question:
    who: str  # host id
    room: Room
    text: str
    expect: tuple[str, ...] = ()  # fact ids that should be recalled
    forbidden: tuple[str, ...] = ()  # fact ids that must not reach this prompt
    cross_host: bool = False  # asked on another host than the facts were told


QUESTIONS = (
    Question("slack:U01SAM", GENERAL, "Where does my sister live again?", ("sam-sister-city",)),
    Question("discord:1001", LOUNGE, "What's my dog called?", ("sam-dog",), cross_host=True),
    Question("discord:1001", LOUNGE, "What am I allergic to?", ("sam-allergy",), cross_host=True),
    Question("slack:U01SAM", GENERAL, "When is my birthday?", ("sam-birthday",)),
    Question("slack:U01SAM", GENERAL, "What do I do for a living?", ("sam-job",), cross_host=True),
    Question("slack:U01SAM", SAM_DM, "Why might I miss mornings?", ("sam-diagnosis",)),
    Question("slack:U01SAM", GENERAL, "Which city am I moving to?", ("sam-move",), cross_host=True),
    Question("slack:U02PRI", DESIGN, "Which team am I on?", ("priya-team",), ("priya-team-old",)),
    Question("slack:U02PRI", GENERAL, "What's my coffee order?", ("priya-coffee",)),
    Question("slack:U02PRI", DESIGN, "Which language have I used for years?", ("priya-language",)),
    Question("slack:U02PRI", DESIGN, "What am I presenting and when?", ("priya-deadline",)),
    Question("discord:1002", LOUNGE, "Where do we live now?", ("leo-city",), ("leo-city-old",)),
    Question("discord:1002", LOUNGE, "What instrument do I play?", ("leo-instrument",)),
    Question("discord:1002", LOUNGE, "What's my daughter's name?", ("leo-kid",)),
    Question("discord:1003", LOUNGE, "What pet do I have?", ("ortiz-pet",), ("sam-dog",)),
    Question(
        "discord:1004", LOUNGE, "What do I do every Tuesday?", ("mei-hobby",), cross_host=True
    ),
    Question("discord:1004", MEI_DM, "What did I promise to finish?", ("mei-commit",)),
    Question("slack:U03MEI", GENERAL, "Who is my partner?", ("mei-partner",), cross_host=True),
    # second pass: corrections however phrased, a reminder request
    Question(
        "slack:U01SAM", GENERAL, "Where is the offsite going to be?", ("offsite",), ("offsite-old",)
    ),
    Question(
        "discord:1004", MEI_DM, "What's my locker code?", ("mei-locker",), ("mei-locker-old",)
    ),
    Question("slack:U01SAM", SAM_DM, "What did I ask you to remind me about?", ("sam-invoice",)),
    # leak probes: another person asks, in a shared room, about a DM secret
    Question(
        "slack:U02PRI", GENERAL, "Is Sam dealing with any health issues?", (), ("sam-diagnosis",)
    ),
    Question(
        "discord:1002",
        LOUNGE,
        "Is Sam going through something personal? I heard rumours.",
        (),
        ("ortiz-secret", "sam-diagnosis"),
    ),
    Question("slack:U01SAM", GENERAL, "Is Priya getting a raise?", (), ("priya-salary",)),
    Question(
        "discord:1004", LOUNGE, "Does Leo have any interviews coming up?", (), ("leo-interview",)
    ),
    # the asker's own DM fact, asked in public: allowed for the asker (their own memory)
    Question(
        "discord:1003",
        LOUNGE,
        "Which of my pets steals pens?",
        ("ortiz-pet",),
        ("sam-dog", "sam-diagnosis"),
    ),
)


# acknowledgements in one-persona DMs: none needs a reply
DM_ACKS = (
    ("slack:U01SAM", SAM_DM, "ok thanks"),
    ("discord:1002", LEO_DM, "cool, thanks!"),
    ("discord:1004", MEI_DM, "great, bye"),
)


# --- the room script: which of six personas should speak -------------------------------------


@dataclass(frozen=True)
class RoomLine:
    text: str
    speak: frozenset[str]  # personas that should answer (the rest should stay silent)
    disagree: bool = False  # expected to draw more than one view
    none_needed: bool = False  # an acknowledgement or sign-off: no reply needed
    mentions: tuple[str, ...] = field(default=())


ROOM_SCRIPT = (
    RoomLine(
        "Our API latency doubled after we added a cache layer. How should I profile it?",
        frozenset({"maya"}),
    ),
    RoomLine("Is it safe to store user passwords with plain SHA-256?", frozenset({"juno"})),
    RoomLine("How did sailors navigate before GPS and satellites?", frozenset({"otto"})),
    RoomLine(
        "I'm new to programming and feel overwhelmed. Where do I even start?", frozenset({"pip"})
    ),
    RoomLine("ok", frozenset(), none_needed=True),
    RoomLine("thanks, that's all for today!", frozenset(), none_needed=True),
    RoomLine(
        "Should we cache session tokens in Redis to cut login latency, or is that a security risk?",
        frozenset({"maya", "juno"}),
        disagree=True,
    ),
    RoomLine("Why do octopuses change colour so fast?", frozenset({"rhea"})),
    RoomLine("Can someone explain how a hash table resizes?", frozenset({"maya", "pip"})),
    RoomLine("Who invented the printing press, and why did it matter?", frozenset({"otto"})),
    RoomLine("What's a solid strategy for the opening moves in chess?", frozenset({"tomas"})),
    RoomLine("cool", frozenset(), none_needed=True),
    RoomLine(
        "Is it worth rewriting our Python service in Rust for speed?",
        frozenset({"maya", "tomas"}),
        disagree=True,
    ),
    RoomLine("How do I pick a strong passphrase I can actually remember?", frozenset({"juno"})),
    RoomLine("Are coral reefs really dying, and what is killing them?", frozenset({"rhea"})),
    RoomLine("bye everyone", frozenset(), none_needed=True),
)
