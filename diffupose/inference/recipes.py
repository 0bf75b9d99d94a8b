"""The recipes of the shipped models (`diffupose/zoo_models/`) as data, in
`diffupose/resources/zoo_recipes.json`: for each, how its data are prepared, the training preset,
overrides and seed, the words of its card (summary, data, 2D input, intended use, licence) and
notes on why. An entry with `variant_of` is that recipe with its own summary and notes and its
overrides added or changed. `benchmarks/zoo.py` trains, evaluates and exports a model from its
recipe; `recipe_for` reads a shipped model's card first (what it was trained with), the table
for a new model or with `from_table` (a changed recipe, to retrain).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..config import parse_override
from ..errors import ConfigError
from . import zoo

__all__ = ["RECIPES_FILE", "RECIPES", "load_recipes", "recipe_for"]

RECIPES_FILE = Path(__file__).resolve().parents[1] / "resources" / "zoo_recipes.json"


def load_recipes(path: Path = RECIPES_FILE) -> dict[str, dict]:
    """The recipe table, name -> recipe, variants resolved (in file order: a variant may vary an
    earlier one)."""
    recipes: dict[str, dict] = {}
    for name, entry in json.loads(Path(path).read_text())["recipes"].items():
        base = entry.get("variant_of")
        if base is None:
            recipes[name] = dict(entry)
            continue
        own = {k: v for k, v in entry.items() if k not in ("variant_of", "overrides")}
        recipes[name] = {**recipes[base], **own,
                         "overrides": {**recipes[base]["overrides"], **entry.get("overrides", {})}}
    return recipes


RECIPES: dict[str, dict] = load_recipes()


def recipe_for(name: str, from_table: bool = False) -> dict:
    """The recipe of a shipped model's card (its overrides as written there), else the table's;
    `from_table`: the table even for a shipped model (to retrain it under a changed recipe).
    A name in neither is a one-line ConfigError."""
    recipe = dict(RECIPES.get(name, {}))
    if from_table and not recipe:
        raise ConfigError(f"no recipe {name!r} in the table; known: {sorted(RECIPES)}")
    if name in zoo.available() and not from_table:
        card = zoo.card(name)
        recipe.update({k: card[k] for k in ("summary", "data", "keypoints_2d", "prepare", "data_dir", "preset", "seed",
                                            "intended_use", "license") if k in card})
        if "overrides" in card:
            recipe["overrides"] = dict(parse_override(o) for o in card["overrides"])
    if not recipe:
        raise ConfigError(f"unknown zoo recipe {name!r}; known: {sorted(set(RECIPES) | set(zoo.available()))}")
    return recipe
