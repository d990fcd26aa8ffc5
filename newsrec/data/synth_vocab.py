"""Vocabulary of the synthetic MIND generator: topics, headline templates, name parts.

Each topic maps to a MIND category with its subcategories and has its own nouns,
verbs, adjectives and tails, so that headlines of different topics read differently
and a sentence-embedding model separates them. Each topic also names the kind of
entity that anchors a storyline (a team, a company, a show) and the kinds of its
members (players, executives, cast).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    """One topic: a MIND category and what its headlines and storylines are made of."""

    category: str
    subcategories: tuple[str, ...]
    nouns: tuple[str, ...]
    verbs: tuple[str, ...]  # third person, take a noun object: "wins", "unveils"
    adjectives: tuple[str, ...]
    tails: tuple[str, ...]  # phrases that end a sentence: "ahead of the playoffs"
    anchor: tuple[str, str]  # (name kind, MIND entity Type) of a storyline's anchor
    members: tuple[tuple[str, str], ...]  # (name kind, Type) of its members, cycled
    weight: float = 1.0  # prior share of articles and of user interest


def _w(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split("|") if s.strip())


TOPICS: tuple[Topic, ...] = (
    Topic(
        "news",
        ("newsus", "newspolitics", "newsworld", "newscrime"),
        _w(
            "election bill|budget vote|court ruling|campaign rally|policy shift|city council vote|"
            "investigation|immigration plan|voter turnout|public hearing|tax proposal|impeachment inquiry"
        ),
        _w("passes|blocks|announces|defends|challenges|backs|rejects|unveils|debates|delays"),
        _w("controversial|bipartisan|sweeping|disputed|federal|emergency|historic|tense"),
        _w(
            "before the midterm elections|as lawmakers return to Washington|amid growing criticism|"
            "after a tense committee hearing|as the deadline nears|in a narrow vote"
        ),
        ("city", "G"),
        (("person", "P"), ("agency", "O"), ("person", "P")),
        1.6,
    ),
    Topic(
        "sports",
        ("football_nfl", "basketball_nba", "baseball_mlb", "soccer"),
        _w(
            "comeback win|playoff game|season opener|trade deadline deal|injury report|draft pick|"
            "overtime thriller|rivalry game|championship run|winning streak|home opener|roster move"
        ),
        _w("wins|clinches|loses|secures|celebrates|dominates|squanders|extends|snaps|survives"),
        _w("dramatic|record-breaking|hard-fought|lopsided|late-season|stunning|physical|crucial"),
        _w(
            "in Sunday's matchup|ahead of the playoffs|on the road|after a fourth-quarter rally|"
            "in front of a sold-out crowd|before the All-Star break"
        ),
        ("team", "O"),
        (("person", "P"), ("person", "P"), ("stadium", "G")),
        1.6,
    ),
    Topic(
        "finance",
        ("finance-companies", "markets", "finance-real-estate", "personalfinance"),
        _w(
            "quarterly earnings|stock rally|merger deal|interest rate cut|profit warning|share buyback|"
            "layoff plan|dividend increase|IPO filing|sales forecast|retirement savings|mortgage rate"
        ),
        _w("reports|announces|cuts|raises|beats|misses|slashes|posts|expects|warns of"),
        _w("quarterly|strong|weak|surprise|record|volatile|long-term|steep"),
        _w(
            "as investors weigh recession fears|on Wall Street|ahead of the Fed meeting|"
            "as shares slide in early trading|after a strong holiday season|despite rising costs"
        ),
        ("company", "O"),
        (("person", "P"), ("product", "C"), ("person", "P")),
        1.2,
    ),
    Topic(
        "foodanddrink",
        ("recipes", "restaurants", "drinks", "foodnews"),
        _w(
            "holiday recipe|slow cooker dinner|chocolate dessert|craft cocktail|brunch menu|"
            "comfort food|pumpkin pie|tasting menu|weeknight pasta|grilled steak|holiday cookie|wine pairing"
        ),
        _w("serves|shares|perfects|adds|revives|bakes|reinvents|pairs|tops|whips up"),
        _w("easy|creamy|crispy|homemade|savory|spicy|festive|cozy"),
        _w(
            "for Thanksgiving dinner|in under thirty minutes|with seasonal ingredients|"
            "that the whole family will love|at a new downtown location|for the holidays"
        ),
        ("restaurant", "O"),
        (("person", "P"), ("dish", "C"), ("person", "P")),
        1.0,
    ),
    Topic(
        "lifestyle",
        ("lifestyleroyals", "lifestylebuzz", "shop-holidays", "lifestyleparenting"),
        _w(
            "royal wedding|holiday gift guide|fashion trend|home makeover|wedding dress|"
            "family tradition|style secret|decor idea|etiquette rule|shopping haul|"
            "birthday party|charity gala"
        ),
        _w("shows off|reveals|hosts|wears|shares|celebrates|skips|plans|attends|inspires"),
        _w("elegant|stylish|royal|glamorous|cozy|chic|adorable|timeless"),
        _w(
            "at the palace|for the holiday season|in a rare public appearance|on a royal tour|"
            "to the delight of fans|at the annual gala"
        ),
        ("house", "O"),
        (("person", "P"), ("person", "P"), ("brand", "O")),
        0.9,
    ),
    Topic(
        "travel",
        ("traveltrip", "travelnews", "travelideas", "travelarticle"),
        _w(
            "beach vacation|flight delay|road trip|hotel deal|national park visit|cruise itinerary|"
            "weekend getaway|airport security line|hiking trail|ski resort opening|travel ban|island escape"
        ),
        _w("offers|reopens|welcomes|adds|launches|cancels|ranks|features|expands|promotes"),
        _w("scenic|affordable|remote|luxury|hidden|crowded|breathtaking|tropical"),
        _w(
            "for winter travelers|this holiday season|off the beaten path|with ocean views|"
            "before peak season|for budget travelers"
        ),
        ("destination", "G"),
        (("hotel", "O"), ("landmark", "G"), ("airline", "O")),
        0.8,
    ),
    Topic(
        "autos",
        ("autosnews", "autosenthusiasts", "autosreview", "autosclassics"),
        _w(
            "electric SUV|pickup truck|sports car|safety recall|test drive|fuel economy rating|"
            "concept car|engine upgrade|sedan redesign|horsepower boost|crash test|dealer price"
        ),
        _w("unveils|recalls|debuts|tests|upgrades|delivers|discontinues|previews|revives|prices"),
        _w("all-new|electric|turbocharged|rugged|affordable|luxury|hybrid|vintage"),
        _w(
            "at the auto show|for the new model year|on the open highway|ahead of its launch|"
            "after a safety review|for off-road fans"
        ),
        ("automaker", "O"),
        (("vehicle", "C"), ("person", "P"), ("vehicle", "C")),
        0.9,
    ),
    Topic(
        "health",
        ("medical", "wellness", "nutrition", "weightloss"),
        _w(
            "clinical trial|flu season|heart disease risk|sleep habit|blood pressure|cancer screening|"
            "vaccine study|weight loss plan|mental health|gut health|diabetes treatment|workout routine"
        ),
        _w("links|reduces|improves|raises|treats|studies|prevents|doubles|lowers|warns about"),
        _w("chronic|healthy|new|promising|daily|early|common|serious"),
        _w(
            "according to a new study|in older adults|doctors say|for better sleep|"
            "researchers found|in a large clinical trial"
        ),
        ("hospital", "O"),
        (("person", "P"), ("drug", "C"), ("person", "P")),
        1.1,
    ),
    Topic(
        "tv",
        ("tvnews", "tv-celebrity", "tvshows", "tv-recaps"),
        _w(
            "season finale|episode recap|series renewal|reality show twist|cast shake-up|ratings win|"
            "talk show interview|spinoff series|premiere date|cliffhanger ending|"
            "reunion special|streaming debut"
        ),
        _w("renews|cancels|teases|premieres|recaps|confirms|airs|ends|casts|revives"),
        _w("shocking|emotional|long-awaited|fan-favorite|dramatic|surprise|hilarious|final"),
        _w(
            "on Sunday night|in the season finale|ahead of the new season|as fans react online|"
            "on the late-night show|in a streaming exclusive"
        ),
        ("show", "C"),
        (("person", "P"), ("person", "P"), ("network", "O")),
        1.0,
    ),
    Topic(
        "music",
        ("musicnews", "music-celebrity", "musicreviews"),
        _w(
            "new album|concert tour|music video|chart debut|Grammy nomination|farewell show|"
            "surprise single|festival lineup|vinyl reissue|duet|acoustic set|world tour"
        ),
        _w("releases|announces|drops|performs|headlines|covers|records|cancels|tops|teases"),
        _w("new|acoustic|sold-out|chart-topping|surprise|intimate|legendary|debut"),
        _w(
            "on the Billboard charts|at the arena|ahead of the Grammys|for the fans|"
            "on streaming services|at the music festival"
        ),
        ("band", "O"),
        (("person", "P"), ("album", "C"), ("person", "P")),
        0.8,
    ),
    Topic(
        "movies",
        ("movienews", "movies-celebrity", "moviesreviews"),
        _w(
            "box office opening|movie trailer|sequel|film review|Oscar campaign|casting news|"
            "director's cut|premiere night|franchise reboot|film festival debut|studio release date|remake"
        ),
        _w("tops|casts|directs|releases|delays|previews|earns|stars in|reboots|premieres"),
        _w("blockbuster|animated|indie|sequel|award-winning|long-delayed|star-studded|gripping"),
        _w(
            "at the box office|in theaters this weekend|at the film festival|ahead of awards season|"
            "on the red carpet|in the first trailer"
        ),
        ("film", "C"),
        (("person", "P"), ("person", "P"), ("studio", "O")),
        0.9,
    ),
    Topic(
        "weather",
        ("weathertopstories", "weathernews"),
        _w(
            "winter storm|heavy snow|flood warning|heat wave|tornado watch|freezing rain|"
            "storm surge|power outage|record cold|wind advisory|drought|weekend forecast"
        ),
        _w("brings|threatens|hits|dumps|triggers|batters|forces|sweeps across|delays|floods"),
        _w("powerful|severe|icy|record|dangerous|slow-moving|widespread|early-season"),
        _w(
            "across the region|through the weekend|forecasters say|along the coast|"
            "as temperatures plunge|during the morning commute"
        ),
        ("storm", "C"),
        (("region", "G"), ("region", "G"), ("person", "P")),
        0.7,
    ),
    Topic(
        "video",
        ("viral", "animals", "news"),
        _w(
            "viral clip|rescue video|puppy surprise|dashcam footage|cute kitten|wildlife encounter|"
            "prank video|dance challenge|bear sighting|backyard surprise|heartwarming reunion|drone footage"
        ),
        _w("captures|shows|films|goes viral with|surprises|spots|rescues|shares|records|delights"),
        _w("adorable|hilarious|heartwarming|unbelievable|wild|incredible|curious|playful"),
        _w(
            "caught on camera|in a video that went viral|millions of viewers watched|"
            "on social media|in the backyard|and the internet loves it"
        ),
        ("channel", "O"),
        (("animal", "C"), ("person", "P"), ("animal", "C")),
        0.6,
    ),
    Topic(
        "entertainment",
        ("celebrity", "entertainment-celebrity", "awards"),
        _w(
            "red carpet look|celebrity breakup|engagement news|award speech|social media post|"
            "birthday tribute|interview|feud|charity event|baby announcement|memoir|surprise cameo"
        ),
        _w("addresses|confirms|denies|posts|celebrates|reveals|attends|praises|jokes about|hosts"),
        _w("candid|surprise|rare|glamorous|heartfelt|cryptic|public|private"),
        _w(
            "on Instagram|at the awards show|in a new interview|to the surprise of fans|"
            "on the red carpet|in a rare statement"
        ),
        ("celebrity", "P"),
        (("person", "P"), ("event", "C"), ("person", "P")),
        0.9,
    ),
    Topic(
        "kids",
        ("kids", "kidsfamily", "kidsactivities"),
        _w(
            "cartoon episode|toy release|craft project|school science fair|bedtime story|"
            "board game|theme park ride|coloring page|family movie night|holiday activity|"
            "puppet show|reading list"
        ),
        _w("introduces|launches|features|teaches|celebrates|brings|inspires|adds|returns with|hosts"),
        _w("colorful|educational|fun|magical|creative|silly|friendly|animated"),
        _w(
            "for young readers|this holiday break|for the whole family|at the children's museum|"
            "in a new season|for curious kids"
        ),
        ("kidshow", "C"),
        (("character", "C"), ("person", "P"), ("character", "C")),
        0.5,
    ),
)

# Headline and abstract templates. {E} / {F} are entities (first / second), {N}/{N2}
# nouns, {V} a verb, {A} an adjective, {T} a tail. Templates without {E} make the
# entity-free articles that MIND also has.
TITLE_TEMPLATES = (
    "{E} {V} {A} {N} {T}",
    "{E} {V} {N} as {F} looks on",
    "Why {E} {V} the {A} {N}",
    "{A} {N}: {E} {V} {N2}",
    "What {E}'s {N} means for the {N2}",
    "{E}, {F} and the {A} {N} {T}",
    "{E} {V} {N} after {A} {N2}",
)
TITLE_TEMPLATES_NO_ENTITY = (
    "The {A} {N} everyone is talking about {T}",
    "{A} {N} {V} {N2} {T}",
    "Everything to know about the {A} {N}",
)
ABSTRACT_TEMPLATES = (
    "{E} {V} a {A} {N} {T}. The {N2} comes as {F} weighs the next step.",
    "The {A} {N} puts {E} in the spotlight {T}. Here is what {F} said about the {N2}.",
    "{E} {V} the {N} {T}, and {F} {V} a {A} {N2}.",
    "After the {A} {N}, {E} and {F} turn to the {N2} {T}.",
)
ABSTRACT_TEMPLATES_NO_ENTITY = (
    "A {A} {N} {T}. Here is what the {N2} means.",
    "Experts explain the {A} {N} and the {N2} {T}.",
)

# Name parts of the generated entity names.
FIRST = _w(
    "James|Maria|Daniel|Sofia|Marcus|Elena|Tyler|Grace|Andre|Naomi|Victor|Chloe|Isaac|Leah|Owen|Priya|"
    "Caleb|Nina|Rafael|Hannah|Desmond|Clara|Julian|Maya|Felix|Zoe|Malik|Audrey|Hugo|Ivy|Luca|Rosa|"
    "Simon|Tessa|Adrian|Mira|Dominic|Celia|Theo|Lena|Gavin|Paige|Mateo|Alana|Quentin|Vera|Roman|Jade|"
    "Elliot|Nadia|Brooks|Selena|Wesley|Lila|Xavier|Harper|Colin|Yara|Dorian|Fiona"
)
LAST = _w(
    "Hale|Moreno|Whitfield|Castillo|Brennan|Okafor|Lindqvist|Reyes|Thornton|Nakamura|Delgado|Ashford|"
    "Kowalski|Mercer|Abernathy|Quinlan|Sorensen|Valdez|Hargrove|Pemberton|Oyelaran|Fairbanks|Calloway|"
    "Strand|Montague|Baptiste|Kimura|Gallagher|Vasquez|Holloway|Lockhart|Ferreira|Donovan|Iverson|"
    "Whitaker|Marchetti|Sullivan|Achebe|Rasmussen|Beaumont|Tran|Okonkwo|Hendricks|Caruso|Langley|"
    "Petrov|Ellington|Navarro|Winslow|Kaplan|Duarte|Rutherford|Saito|McAllister|Bishop|Novak|Everett|"
    "Sterling|Acosta|Hawthorne|Lindgren|Falcone|Osei|Prescott|Wakefield|Cabrera|Halvorsen|Dunmore"
)
PLACE = _w(
    "Ashbury|Port Ellis|Marden|Cedar Falls|Brookhaven|Lakemont|Redwater|Stonebridge|Fairhaven|Kingsport|"
    "Millbrook|Silverton|Westmere|Oakridge|Harlow|Bayside|Northfield|Granite City|Elmstead|Rosewood|"
    "Crestview|Pinehurst|Clearwater Bay|Hollis|Dunmore|Avalon Point|Sandhaven|Ironwood|Maplewood|Eastbrook|"
    "Whitby|Larkspur|Thornbury|Glenhaven|Riverton|Copper Ridge|Falmouth|Windham|Belmont Shores|Highgate"
)
MASCOT = _w(
    "Hawks|Comets|Mariners|Wolves|Titans|Rangers|Foxes|Stallions|Pilots|Bears|Knights|Storm|Falcons|"
    "Rockets|Pioneers|Lynx|Vipers|Monarchs|Bulldogs|Thunder|Owls|Cyclones|Raptors|Voyagers"
)
STEM = _w(
    "Veloran|Corvex|Altima|Brightwell|Norvale|Quantix|Solenne|Trivant|Halcyon|Meridian|Kestrel|Orbis|"
    "Vantora|Lumen|Pellucid|Aurex|Cindral|Zephyra|Novaris|Tessaro|Calder|Ostrava|Perrin|Sablewood|"
    "Mirador|Ardent|Helix|Bramble|Tundra|Vireo"
)
CORP = _w("Inc.|Corp.|Holdings|Group|Bank|Technologies|Capital|Industries|Labs|Partners")
WORD = _w(
    "Harbor|Night|Garden|Summit|Echo|Lantern|River|Crown|Meadow|Signal|Orchard|Horizon|Ember|Compass|"
    "Hollow|Canyon|Mirror|Anchor|Willow|Beacon|Falcon|Silver|Copper|Velvet|Golden|Midnight|Paper|Iron"
)
DISH = _w(
    "brisket tacos|pumpkin risotto|lemon tart|ramen bowl|apple galette|short rib stew|miso salmon|"
    "pecan pie|mushroom gnocchi|chai latte|fried chicken sandwich|cranberry sauce|carrot cake|pho|"
    "shakshuka|clam chowder|peach cobbler|bibimbap|tiramisu|cold brew"
)
CONDITION = _w(
    "migraine|type 2 diabetes|insomnia|hypertension|asthma|arthritis|seasonal flu|anxiety|"
    "high cholesterol|Alzheimer's disease|celiac disease|sleep apnea|psoriasis|osteoporosis"
)
ANIMAL = _w(
    "golden retriever|red fox|baby elephant|sea otter|barn owl|corgi|raccoon|humpback whale|"
    "border collie|black bear|tabby cat|penguin|kangaroo|husky|bald eagle|hedgehog"
)
RELATIONS = (
    ("P31", "instance of"),
    ("P54", "member of sports team"),
    ("P106", "occupation"),
    ("P17", "country"),
    ("P131", "located in"),
    ("P361", "part of"),
    ("P527", "has part"),
    ("P175", "performer"),
    ("P161", "cast member"),
    ("P176", "manufacturer"),
    ("P57", "director"),
    ("P108", "employer"),
)
