"""Count the words of a text file and print the most common ones."""

import collections
import re
import sys


def words(text):
    return re.findall(r"[a-z']+", text.lower())


def most_common(path, n=10):
    with open(path, encoding="utf-8") as f:
        counts = collections.Counter(words(f.read()))
    return counts.most_common(n)


def main(argv):
    if len(argv) < 2:
        print("usage: wordcount.py FILE [N]", file=sys.stderr)
        return 2
    n = int(argv[2]) if len(argv) > 2 else 10
    for word, count in most_common(argv[1], n):
        print(f"{count:6d} {word}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
