#!/usr/bin/env python3
"""Validate the forkcast meal catalog (data/meals.yaml, data/foods.csv, data/food_tags.csv).

Prints per-meal nutrition (kcal, protein, fat, carbs, sodium, Atwater ratio),
counts by slot and cuisine, and diet counts derived from data/food_tags.csv.
Exits non-zero on any rule violation. Python 3 standard library only.

Usage (from the repository root):
    python3 tools/catalog/check_catalog.py [--data DIR] [--quiet]
"""
import argparse
import collections
import csv
import os
import re
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

SLOTS = ("breakfast", "lunch", "dinner", "snack")
CUISINES = ("american", "mexican", "italian", "chinese", "japanese", "korean", "thai", "vietnamese",
            "indian", "mediterranean", "middle_eastern", "greek", "french", "spanish", "caribbean")
TAGS = {"sweet", "savory", "spicy", "tangy", "creamy", "crunchy", "fresh", "hearty", "comfort", "light",
        "warm", "cold", "fried", "grilled", "baked", "raw", "whole_grain", "leafy", "cheesy", "quick"}
ORIGINS = ("plant", "dairy", "egg", "meat", "poultry", "fish", "shellfish", "honey")
ALLERGENS = ("milk", "egg", "fish", "shellfish", "tree_nuts", "peanuts", "gluten", "soy", "sesame")
VEGETARIAN_ORIGINS = {"plant", "dairy", "egg", "honey"}
PESCATARIAN_ORIGINS = VEGETARIAN_ORIGINS | {"fish", "shellfish"}
# an allergen of animal source implies an origin that is not plant/honey
ANIMAL_ALLERGENS = {"milk", "egg", "fish", "shellfish"}
# an animal origin implies its own allergen
ORIGIN_ALLERGEN = {"dairy": "milk", "egg": "egg", "fish": "fish", "shellfish": "shellfish"}

FOODS_HEADER = ["ndb_no", "description", "food_group", "kcal", "protein_g", "fat_g", "carbs_g", "fiber_g",
                "sugar_g", "sodium_mg", "sat_fat_g", "calcium_mg", "iron_mg", "potassium_mg", "vit_c_mg"]
TAGS_HEADER = ["ndb_no", "origin", "allergens"]

KCAL_RANGE = {"breakfast": (250, 900), "lunch": (250, 900), "dinner": (250, 900), "snack": (80, 400)}
ATWATER_TOL = 0.15
SODIUM_MAX_MG = 3000          # hard limit per serving
SODIUM_WARN_MG = 2000         # printed as a warning
PREP_RANGE = (2, 90)
COST_RANGE = (0.30, 12.00)
TAGS_PER_MEAL = (2, 5)
INGREDIENTS_PER_MEAL = (2, 8)
MIN_SLOT = {"breakfast": 55, "lunch": 75, "dinner": 75, "snack": 55}
MIN_TOTAL = 250
MIN_CUISINES = 12
MIN_PER_CUISINE = 8
MIN_VEGAN = 30
MIN_GLUTEN_FREE = 60

ID_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ,'().&/-]*[A-Za-z0-9).]$")
ING_RE = re.compile(r'^      - \{ndb: "(\d{5})", g: (\d+(?:\.\d+)?)\}\s*(?:#\s?(.*))?$')
KEY_RE = re.compile(r"^    ([a-z_]+):(?: (.*))?$")
FIRST_RE = re.compile(r"^  - id: (.*)$")
MEAL_KEYS = ["id", "name", "slot", "cuisine", "prep_min", "cost_usd", "tags", "ingredients"]


class Errors:
    def __init__(self):
        self.items = []

    def add(self, msg):
        self.items.append(msg)


def parse_meals(path, err):
    """Strict parser for the meals.yaml subset this project uses (see the file header)."""
    meals = []
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as e:
        err.add("meals.yaml: non-ASCII byte at offset %d" % e.start)
        text = raw.decode("ascii", "replace")
    if "\t" in text:
        err.add("meals.yaml: contains a tab character")
    if "\r" in text:
        err.add("meals.yaml: contains a carriage return (use LF line endings)")
    lines = text.split("\n")
    state = "top"
    seen_version = False
    cur = None
    for no, line in enumerate(lines, 1):
        if line.strip() == "" or line.lstrip().startswith("#"):
            continue
        if line != line.rstrip():
            err.add("meals.yaml:%d: trailing whitespace" % no)
            line = line.rstrip()
        if state == "top":
            if line == "version: 1":
                seen_version = True
                continue
            if line == "meals:":
                state = "meals"
                continue
            err.add("meals.yaml:%d: unexpected top-level line: %s" % (no, line))
            continue
        m = FIRST_RE.match(line)
        if m:
            cur = {"_line": no, "id": m.group(1), "_keys": ["id"], "ingredients": []}
            meals.append(cur)
            continue
        if cur is None:
            err.add("meals.yaml:%d: content before first meal: %s" % (no, line))
            continue
        m = ING_RE.match(line)
        if m:
            if cur["_keys"][-1] != "ingredients":
                err.add("meals.yaml:%d: ingredient line outside ingredients list" % no)
            cur["ingredients"].append((m.group(1), float(m.group(2)), (m.group(3) or "").strip(), no))
            continue
        m = KEY_RE.match(line)
        if m:
            key, val = m.group(1), (m.group(2) or "")
            if key in cur["_keys"] or key not in MEAL_KEYS:
                err.add("meals.yaml:%d: unexpected or duplicate key '%s'" % (no, key))
                continue
            cur["_keys"].append(key)
            if key == "ingredients":
                if val.strip():
                    err.add("meals.yaml:%d: ingredients must be a block list" % no)
                continue
            val = val.split(" #")[0].strip() if key != "name" else val.strip()
            cur[key] = val
            continue
        err.add("meals.yaml:%d: cannot parse line: %s" % (no, line))
    if not seen_version:
        err.add("meals.yaml: missing 'version: 1'")
    for meal in meals:
        if meal["_keys"] != MEAL_KEYS:
            err.add("meals.yaml:%d: meal %s keys must be exactly, in order: %s (got %s)"
                    % (meal["_line"], meal["id"], ", ".join(MEAL_KEYS), ", ".join(meal["_keys"])))
    return meals


def read_csv(path, header, err):
    if not os.path.isfile(path):
        err.add("missing file " + path)
        return []
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        raw.decode("ascii")
    except UnicodeDecodeError:
        err.add("%s: not ASCII" % os.path.basename(path))
    if b"\r" in raw:
        err.add("%s: contains carriage returns" % os.path.basename(path))
    with open(path, newline="", encoding="ascii", errors="replace") as fh:
        rows = list(csv.reader(fh))
    if not rows or rows[0] != header:
        err.add("%s: header must be exactly %s" % (os.path.basename(path), ",".join(header)))
        return []
    out = []
    for i, r in enumerate(rows[1:], 2):
        if len(r) != len(header):
            err.add("%s:%d: expected %d fields, got %d" % (os.path.basename(path), i, len(header), len(r)))
            continue
        out.append(dict(zip(header, r)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(REPO, "data"))
    ap.add_argument("--quiet", action="store_true", help="do not print the per-meal table")
    args = ap.parse_args()
    err = Errors()
    warnings = []

    meals = parse_meals(os.path.join(args.data, "meals.yaml"), err)
    food_rows = read_csv(os.path.join(args.data, "foods.csv"), FOODS_HEADER, err)
    tag_rows = read_csv(os.path.join(args.data, "food_tags.csv"), TAGS_HEADER, err)

    # ---- foods.csv
    foods = {}
    for r in food_rows:
        n = r["ndb_no"]
        if not re.match(r"^\d{5}$", n):
            err.add("foods.csv: bad ndb_no %r" % n)
        if n in foods:
            err.add("foods.csv: duplicate ndb_no " + n)
        try:
            foods[n] = {k: float(r[k]) for k in FOODS_HEADER[3:]}
        except ValueError:
            err.add("foods.csv: non-numeric nutrient in row " + n)
        foods.setdefault(n, {})["description"] = r["description"]
        foods[n]["food_group"] = r["food_group"]
    if [r["ndb_no"] for r in food_rows] != sorted(r["ndb_no"] for r in food_rows):
        err.add("foods.csv: rows are not sorted by ndb_no")

    # ---- food_tags.csv
    tags = {}
    for r in tag_rows:
        n = r["ndb_no"]
        if n in tags:
            err.add("food_tags.csv: duplicate ndb_no " + n)
        if r["origin"] not in ORIGINS:
            err.add("food_tags.csv: %s has bad origin %r" % (n, r["origin"]))
        al = [a for a in r["allergens"].split(";") if a] if r["allergens"] else []
        for a in al:
            if a not in ALLERGENS:
                err.add("food_tags.csv: %s has unknown allergen %r" % (n, a))
        if len(set(al)) != len(al):
            err.add("food_tags.csv: %s repeats an allergen" % n)
        if r["origin"] in ("plant", "honey") and ANIMAL_ALLERGENS & set(al):
            err.add("food_tags.csv: %s is origin %s but lists animal allergen(s) %s"
                    % (n, r["origin"], ";".join(sorted(ANIMAL_ALLERGENS & set(al)))))
        need = ORIGIN_ALLERGEN.get(r["origin"])
        if need and need not in al:
            err.add("food_tags.csv: %s is origin %s but does not list allergen %s" % (n, r["origin"], need))
        # SR26's food group is an independent witness of the origin
        grp = foods.get(n, {}).get("food_group", "")
        if any(w in grp for w in ("Beef", "Pork", "Lamb")) and r["origin"] != "meat":
            err.add("food_tags.csv: %s is in food group '%s' but origin %s" % (n, grp, r["origin"]))
        if "Poultry" in grp and r["origin"] not in ("poultry", "meat"):
            err.add("food_tags.csv: %s is in food group '%s' but origin %s" % (n, grp, r["origin"]))
        if "Finfish" in grp and r["origin"] in ("plant", "honey"):
            err.add("food_tags.csv: %s is in food group '%s' but origin %s" % (n, grp, r["origin"]))
        if "Dairy and Egg" in grp and r["origin"] in ("plant", "honey"):
            err.add("food_tags.csv: %s is in food group '%s' but origin %s" % (n, grp, r["origin"]))
        tags[n] = (r["origin"], set(al))
    if [r["ndb_no"] for r in tag_rows] != sorted(r["ndb_no"] for r in tag_rows):
        err.add("food_tags.csv: rows are not sorted by ndb_no")

    # ---- meals
    used = set()
    ids = set()
    slot_count = collections.Counter()
    cuisine_count = collections.Counter()
    cuisine_slots = collections.defaultdict(set)
    diet = collections.Counter()
    allergen_meals = collections.Counter()
    table = []
    for m in meals:
        mid = m.get("id", "?")
        where = "meal %s (line %d)" % (mid, m["_line"])
        if not ID_RE.match(mid):
            err.add(where + ": id is not snake_case")
        if mid in ids:
            err.add(where + ": duplicate id")
        ids.add(mid)
        name = m.get("name", "")
        if not NAME_RE.match(name) or ": " in name or " #" in name:
            err.add(where + ": name %r uses characters outside the safe plain-YAML set" % name)
        slot = m.get("slot")
        if slot not in SLOTS:
            err.add(where + ": bad slot %r" % slot)
        cuisine = m.get("cuisine")
        if cuisine not in CUISINES:
            err.add(where + ": bad cuisine %r" % cuisine)
        try:
            prep = int(m.get("prep_min", ""))
            if not PREP_RANGE[0] <= prep <= PREP_RANGE[1]:
                err.add(where + ": prep_min %d outside %d-%d" % ((prep,) + PREP_RANGE))
        except ValueError:
            err.add(where + ": prep_min is not an integer")
        try:
            cost_s = m.get("cost_usd", "")
            cost = float(cost_s)
            if not re.match(r"^\d+\.\d{2}$", cost_s):
                err.add(where + ": cost_usd must have two decimals")
            if not COST_RANGE[0] <= cost <= COST_RANGE[1]:
                err.add(where + ": cost_usd %.2f outside %.2f-%.2f" % ((cost,) + COST_RANGE))
        except ValueError:
            err.add(where + ": cost_usd is not a number")
        tv = m.get("tags", "")
        if not (tv.startswith("[") and tv.endswith("]")):
            err.add(where + ": tags must be a flow list")
            tl = []
        else:
            tl = [t.strip() for t in tv[1:-1].split(",") if t.strip()]
        if not TAGS_PER_MEAL[0] <= len(tl) <= TAGS_PER_MEAL[1]:
            err.add(where + ": needs %d-%d tags, has %d" % (TAGS_PER_MEAL + (len(tl),)))
        if len(set(tl)) != len(tl):
            err.add(where + ": repeated tag")
        for t in tl:
            if t not in TAGS:
                err.add(where + ": tag %r is not in the vocabulary" % t)
        ings = m["ingredients"]
        if not INGREDIENTS_PER_MEAL[0] <= len(ings) <= INGREDIENTS_PER_MEAL[1]:
            err.add(where + ": needs %d-%d ingredients, has %d" % (INGREDIENTS_PER_MEAL + (len(ings),)))
        if len({i[0] for i in ings}) != len(ings):
            err.add(where + ": an ndb appears twice")
        tot = collections.Counter()
        origins, allergens = set(), set()
        ok = True
        for ndb, g, comment, line in ings:
            used.add(ndb)
            if g <= 0:
                err.add("meals.yaml:%d: grams must be positive" % line)
            if ndb not in foods:
                err.add("meals.yaml:%d: ndb %s not in foods.csv (run build_catalog.py)" % (line, ndb))
                ok = False
                continue
            if ndb not in tags:
                err.add("meals.yaml:%d: ndb %s has no food_tags.csv row" % (line, ndb))
                ok = False
            else:
                origins.add(tags[ndb][0])
                allergens |= tags[ndb][1]
            desc = foods[ndb]["description"]
            c = comment[:-3].rstrip() if comment.endswith("...") else comment
            if not c or not desc.startswith(c):
                err.add("meals.yaml:%d: comment must be the SR26 description (%s)" % (line, desc))
            for k in ("kcal", "protein_g", "fat_g", "carbs_g", "sodium_mg"):
                tot[k] += foods[ndb].get(k, 0.0) * g / 100.0
        if not ok:
            continue
        at = 4 * tot["protein_g"] + 4 * tot["carbs_g"] + 9 * tot["fat_g"]
        ratio = tot["kcal"] / at if at else 0.0
        if slot in KCAL_RANGE:
            lo, hi = KCAL_RANGE[slot]
            if not lo <= tot["kcal"] <= hi:
                err.add(where + ": %.0f kcal outside %s range %d-%d" % (tot["kcal"], slot, lo, hi))
        if abs(ratio - 1.0) > ATWATER_TOL:
            err.add(where + ": Atwater ratio %.2f outside 1 +/- %.2f" % (ratio, ATWATER_TOL))
        if tot["sodium_mg"] > SODIUM_MAX_MG:
            err.add(where + ": sodium %.0f mg > %d mg" % (tot["sodium_mg"], SODIUM_MAX_MG))
        elif tot["sodium_mg"] > SODIUM_WARN_MG:
            warnings.append(where + ": sodium %.0f mg is high" % tot["sodium_mg"])
        slot_count[slot] += 1
        cuisine_count[cuisine] += 1
        cuisine_slots[cuisine].add(slot)
        labels = []
        if origins <= {"plant"}:
            diet["vegan"] += 1
            labels.append("vegan")
        if origins <= VEGETARIAN_ORIGINS:
            diet["vegetarian"] += 1
            labels.append("vegetarian")
        if origins <= PESCATARIAN_ORIGINS:
            diet["pescatarian"] += 1
            if "vegetarian" not in labels:
                labels.append("pescatarian")
        if "gluten" not in allergens:
            diet["gluten_free"] += 1
            labels.append("GF")
        if "milk" not in allergens:
            diet["dairy_free"] += 1
            labels.append("DF")
        for a in allergens:
            allergen_meals[a] += 1
        table.append((mid, slot, cuisine, tot, ratio, labels, sorted(allergens)))

    # ---- cross-file consistency
    extra_tags = sorted(set(tags) - used)
    if extra_tags:
        err.add("food_tags.csv: rows for foods no meal uses: " + ", ".join(extra_tags))
    extra_foods = sorted(set(foods) - used)
    if extra_foods:
        err.add("foods.csv: rows for foods no meal uses (rerun build_catalog.py): " + ", ".join(extra_foods))

    # ---- catalogue-level minimums
    total = sum(slot_count.values())
    if total < MIN_TOTAL:
        err.add("only %d meals, need >= %d" % (total, MIN_TOTAL))
    for s in SLOTS:
        if slot_count[s] < MIN_SLOT[s]:
            err.add("only %d %s meals, need >= %d" % (slot_count[s], s, MIN_SLOT[s]))
    good_cuisines = [c for c in CUISINES if cuisine_count[c] >= MIN_PER_CUISINE]
    if len(good_cuisines) < MIN_CUISINES:
        err.add("only %d cuisines with >= %d meals, need >= %d" % (len(good_cuisines), MIN_PER_CUISINE, MIN_CUISINES))
    for c in CUISINES:
        if 0 < cuisine_count[c] < MIN_PER_CUISINE:
            err.add("cuisine %s has only %d meals, need >= %d" % (c, cuisine_count[c], MIN_PER_CUISINE))
    if diet["vegan"] < MIN_VEGAN:
        err.add("only %d vegan meals, need >= %d" % (diet["vegan"], MIN_VEGAN))
    if diet["gluten_free"] < MIN_GLUTEN_FREE:
        err.add("only %d gluten-free meals, need >= %d" % (diet["gluten_free"], MIN_GLUTEN_FREE))
    for a in ALLERGENS:
        if allergen_meals[a] == 0:
            err.add("no meal contains allergen %s" % a)

    # ---- report
    if not args.quiet:
        print("%-40s %-9s %-14s %6s %6s %6s %6s %7s %5s  %s" %
              ("id", "slot", "cuisine", "kcal", "prot", "fat", "carb", "Na_mg", "atw", "labels | allergens"))
        for mid, slot, cuisine, t, ratio, labels, al in table:
            print("%-40s %-9s %-14s %6.0f %6.1f %6.1f %6.1f %7.0f %5.2f  %s | %s" %
                  (mid, slot, cuisine, t["kcal"], t["protein_g"], t["fat_g"], t["carbs_g"], t["sodium_mg"],
                   ratio, ",".join(labels), ";".join(al)))
        print()
    print("meals: %d   distinct foods: %d" % (total, len(used)))
    print("by slot:    " + "  ".join("%s=%d" % (s, slot_count[s]) for s in SLOTS))
    print("by cuisine: " + "  ".join("%s=%d" % (c, cuisine_count[c]) for c in CUISINES if cuisine_count[c]))
    print("cuisine slots: " + "  ".join("%s:%d" % (c, len(cuisine_slots[c])) for c in CUISINES if cuisine_count[c]))
    print("diets:      vegan=%d  vegetarian=%d  pescatarian(incl. vegetarian)=%d  gluten_free=%d  dairy_free=%d"
          % (diet["vegan"], diet["vegetarian"], diet["pescatarian"], diet["gluten_free"], diet["dairy_free"]))
    print("meals containing allergen: " + "  ".join("%s=%d" % (a, allergen_meals[a]) for a in ALLERGENS))
    for w in warnings:
        print("WARNING: " + w)
    if err.items:
        print("\n%d VIOLATION(S):" % len(err.items))
        for e in err.items:
            print("  " + e)
        sys.exit(1)
    print("check_catalog: OK")


if __name__ == "__main__":
    main()
