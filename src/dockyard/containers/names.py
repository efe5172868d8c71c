"""Container names: Docker's rule and random `adjective_surname` names."""

from __future__ import annotations

import random
import re

from ..errors import InvalidArgument

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_LEFT = ["admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome", "beautiful",
         "blissful", "bold", "boring", "brave", "busy", "charming", "clever", "compassionate", "competent",
         "confident", "cool", "cranky", "crazy", "dazzling", "determined", "distracted", "dreamy", "eager",
         "ecstatic", "elastic", "elated", "elegant", "eloquent", "epic", "exciting", "fervent", "festive",
         "flamboyant", "focused", "friendly", "frosty", "funny", "gallant", "gifted", "goofy", "gracious",
         "great", "happy", "hardcore", "heuristic", "hopeful", "hungry", "infallible", "inspiring",
         "intelligent", "interesting", "jolly", "jovial", "keen", "kind", "laughing", "loving", "lucid",
         "magical", "modest", "musing", "naughty", "nervous", "nice", "nifty", "nostalgic", "objective",
         "optimistic", "peaceful", "pedantic", "pensive", "practical", "priceless", "quirky", "quizzical",
         "recursing", "relaxed", "reverent", "romantic", "sad", "serene", "sharp", "silly", "sleepy",
         "stoic", "strange", "stupefied", "suspicious", "sweet", "tender", "thirsty", "trusting",
         "unruffled", "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful", "xenodochial",
         "youthful", "zealous", "zen"]
_RIGHT = ["agnesi", "albattani", "allen", "almeida", "archimedes", "ardinghelli", "aryabhata", "austin",
          "babbage", "banach", "bardeen", "bartik", "bassi", "bell", "bhabha", "bhaskara", "black",
          "blackwell", "bohr", "booth", "borg", "bose", "boyd", "brahmagupta", "brattain", "brown",
          "carson", "chandrasekhar", "chatelet", "chaum", "cohen", "colden", "cori", "cray", "curie",
          "darwin", "davinci", "dijkstra", "dubinsky", "easley", "einstein", "elion", "engelbart",
          "euclid", "euler", "fermat", "fermi", "feynman", "franklin", "galileo", "gates", "goldberg",
          "goldstine", "golick", "goodall", "hamilton", "hawking", "heisenberg", "hermann", "hertz",
          "hodgkin", "hoover", "hopper", "hypatia", "jackson", "jang", "jennings", "jepsen", "johnson",
          "joliot", "jones", "kalam", "kapitsa", "keller", "kepler", "khorana", "kilby", "kirch", "knuth",
          "lalande", "lamarr", "lamport", "leakey", "leavitt", "lederberg", "lehmann", "lewin", "lichterman",
          "liskov", "lovelace", "lumiere", "mahavira", "margulis", "matsumoto", "mayer", "mccarthy",
          "mcclintock", "mclean", "meitner", "mendel", "merkle", "mestorf", "mirzakhani", "montalcini",
          "morse", "moser", "napier", "nash", "neumann", "newton", "nobel", "noether", "northcutt",
          "noyce", "panini", "pare", "pascal", "pasteur", "payne", "perlman", "pike", "poincare",
          "poitras", "ptolemy", "raman", "ramanujan", "ride", "ritchie", "rosalind", "saha", "sammet",
          "shannon", "shaw", "shirley", "shockley", "sinoussi", "snyder", "spence", "stallman",
          "stonebraker", "swanson", "swartz", "tesla", "thompson", "torvalds", "turing", "varahamihira",
          "villani", "visvesvaraya", "volhard", "wescoff", "wilbur", "wiles", "williams", "wilson", "wing",
          "wozniak", "wright", "wu", "yalow", "yonath", "zhukovsky"]


def validate(name: str) -> str:
    """Return the name without a leading '/', or raise InvalidArgument."""
    if not NAME_RE.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def generate(taken: set[str]) -> str:
    """A fresh random name not in `taken`."""
    for i in range(100):
        n = f"{random.choice(_LEFT)}_{random.choice(_RIGHT)}"
        if i > 10:
            n += str(random.randint(0, 9))
        if n not in taken:
            return n
    raise RuntimeError("could not generate a unique container name")
