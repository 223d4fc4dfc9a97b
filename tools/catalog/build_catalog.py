#!/usr/bin/env python3
"""Build data/foods.csv from the raw USDA SR26 files.

Reads every `ndb: "NNNNN"` value in data/meals.yaml and copies exactly those
foods (per 100 g, values verbatim from ABBREV.txt) into data/foods.csv, sorted
by NDB number. Deterministic; Python 3 standard library only.

Usage (from the repository root):
    python3 tools/catalog/build_catalog.py [SR26_DIR] [--meals data/meals.yaml] [--out data/foods.csv]

SR26_DIR defaults to ../shared/data/usda-sr26 relative to the repository root.
The project reads data/foods.csv at run time and never the SR26 folder.
"""
import argparse
import os
import re
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_SR = os.path.join(REPO, "..", "shared", "data", "usda-sr26")

HEADER = ("ndb_no,description,food_group,kcal,protein_g,fat_g,carbs_g,fiber_g,sugar_g,"
          "sodium_mg,sat_fat_g,calcium_mg,iron_mg,potassium_mg,vit_c_mg")

# (output column, ABBREV.txt field index, required?)
# ABBREV.txt field order (see the SR26 README): 0 NDB_No, 1 Shrt_Desc, 2 Water, 3 Energ_Kcal,
# 4 Protein, 5 Lipid_Tot, 6 Ash, 7 Carbohydrt, 8 Fiber_TD, 9 Sugar_Tot, 10 Calcium, 11 Iron,
# 12 Magnesium, 13 Phosphorus, 14 Potassium, 15 Sodium, ... 20 Vit_C, ... 44 FA_Sat, ...
NUTRIENTS = [
    ("kcal", 3, True),
    ("protein_g", 4, True),
    ("fat_g", 5, True),
    ("carbs_g", 7, True),
    ("fiber_g", 8, False),
    ("sugar_g", 9, False),
    ("sodium_mg", 15, True),
    ("sat_fat_g", 44, False),
    ("calcium_mg", 10, False),
    ("iron_mg", 11, False),
    ("potassium_mg", 14, False),
    ("vit_c_mg", 20, False),
]
ABBREV_FIELDS = 53
NDB_RE = re.compile(r'\bndb:\s*"(\d{5})"')


def die(msg):
    sys.stderr.write("build_catalog: ERROR: " + msg + "\n")
    sys.exit(1)


def read_sr(path):
    """Yield the fields of each record of an SR26 `^`-separated file, `~` quotes removed."""
    if not os.path.isfile(path):
        die("missing SR26 file: " + path)
    with open(path, encoding="latin-1", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = []
            for raw in line.split("^"):
                if len(raw) >= 2 and raw.startswith("~") and raw.endswith("~"):
                    raw = raw[1:-1]
                fields.append(raw)
            yield lineno, fields


def csv_quote(text):
    return '"' + text.replace('"', '""') + '"'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sr_dir", nargs="?", default=DEFAULT_SR, help="folder with the SR26 raw files")
    ap.add_argument("--meals", default=os.path.join(REPO, "data", "meals.yaml"))
    ap.add_argument("--out", default=os.path.join(REPO, "data", "foods.csv"))
    args = ap.parse_args()

    if not os.path.isfile(args.meals):
        die("missing meal catalog: " + args.meals)
    try:
        with open(args.meals, encoding="ascii") as fh:
            wanted = sorted(set(NDB_RE.findall(fh.read())))
    except UnicodeDecodeError as e:
        die("%s is not ASCII (byte offset %d)" % (args.meals, e.start))
    if not wanted:
        die("no ndb values found in " + args.meals)

    groups = {f[0]: f[1] for _, f in read_sr(os.path.join(args.sr_dir, "FD_GROUP.txt"))}
    foods = {}
    for _, f in read_sr(os.path.join(args.sr_dir, "FOOD_DES.txt")):
        foods[f[0]] = (f[2], f[1])  # Long_Desc, FdGrp_Cd
    abbrev = {}
    for lineno, f in read_sr(os.path.join(args.sr_dir, "ABBREV.txt")):
        if len(f) != ABBREV_FIELDS:
            die("ABBREV.txt line %d has %d fields, expected %d" % (lineno, len(f), ABBREV_FIELDS))
        abbrev[f[0]] = f

    unknown = [n for n in wanted if n not in foods or n not in abbrev]
    if unknown:
        die("NDB number(s) used in %s do not exist in SR26: %s" % (args.meals, ", ".join(unknown)))

    rows, substituted, missing_required = [], [], []
    for ndb in wanted:
        desc, grp_code = foods[ndb]
        if grp_code not in groups:
            die("food %s has unknown food group code %s" % (ndb, grp_code))
        rec = abbrev[ndb]
        values = []
        for col, idx, required in NUTRIENTS:
            v = rec[idx].strip()
            if v == "":
                if required:
                    missing_required.append("%s %s (%s)" % (ndb, col, desc))
                    continue
                substituted.append("%s %s (%s)" % (ndb, col, desc))
                v = "0"
            else:
                try:
                    float(v)
                except ValueError:
                    die("food %s field %s is not a number: %r" % (ndb, col, v))
            values.append(v)
        rows.append(",".join([ndb, csv_quote(desc), csv_quote(groups[grp_code])] + values))

    if missing_required:
        die("required nutrient(s) missing in SR26 (pick another food):\n  " + "\n  ".join(missing_required))

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="ascii", newline="\n") as fh:
        fh.write(HEADER + "\n")
        for r in rows:
            fh.write(r + "\n")

    if substituted:
        sys.stderr.write("build_catalog: WARNING: %d missing SR26 value(s) written as 0:\n" % len(substituted))
        for s in substituted:
            sys.stderr.write("  " + s + "\n")
    print("build_catalog: wrote %d foods to %s" % (len(rows), os.path.relpath(args.out, REPO)))


if __name__ == "__main__":
    main()
