"""Names and addresses for generated tasks (all randomness from the caller's generator)."""

from __future__ import annotations

import numpy as np

__all__ = ["FIRST_NAMES", "LAST_NAMES", "address_for", "person_name"]

FIRST_NAMES = ["Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko",
               "Liam", "Mara", "Nils", "Olga", "Priya", "Quentin", "Rosa", "Sami", "Tara", "Umar", "Vera"]
LAST_NAMES = ["Silva", "Novak", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Brennan", "Kowalski", "Haddad",
              "Fischer", "Rossi", "Nguyen", "Patel", "Costa", "Jensen", "Duarte", "Weber", "Ibrahim"]
STREETS = ["Elm Street", "Harbor Road", "Maple Avenue", "Station Lane", "Mill Road", "Park Terrace",
           "Cedar Way", "Bridge Street", "Orchard Close", "Quay Street"]
CITIES = ["Lyon", "Porto", "Leeds", "Graz", "Ghent", "Malmo", "Turin", "Bergen", "Krakow", "Utrecht", "Cork"]


def person_name(rng: np.random.Generator) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def address_for(rng: np.random.Generator) -> dict[str, str]:
    """A name, street address and city."""
    return {
        "name": person_name(rng),
        "address": f"{int(rng.integers(1, 200))} {rng.choice(STREETS)}",
        "city": str(rng.choice(CITIES)),
    }
