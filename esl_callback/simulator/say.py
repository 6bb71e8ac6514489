"""mod_say_en as the simulator has it: the sound files that say a number, for `say_string`.

The files are what mod_say_en.c's en_say_general_count plays (play_group for the millions,
thousands and the rest), written by switch_say_file (switch_loadable_module.c) as
`file_string://a.wav!b.wav`; mod_commands' say_string_function answers that, or without its
`file_string://` when the text starts with `~`, or `-ERR Usage: ...` when it cannot say it.
Only the English module is loaded (as in the recorded switch) and only the counting types.
"""

from __future__ import annotations

USAGE = (
    "-ERR Usage: <module_name>[.<ext>] <lang>[.<ext>] <say_type> <say_method> [<say_gender>] "
    "<text>\n"
)
COUNTING_TYPES = frozenset({"NUMBER", "ITEMS", "PERSONS", "MESSAGES"})
METHODS = frozenset({"pronounced", "iterated", "counted"})


def _group(a: int, b: int, c: int, counted: bool, what: str | None) -> list[str]:
    """mod_say_en's play_group: hundreds, tens, units, then `what` (thousand, million)."""
    files = []
    if a:
        files += [f"digits/{a}", "digits/hundred"]
    if b:
        if b > 1:
            files.append(f"digits/h-{b}0" if c == 0 and counted else f"digits/{b}0")
        else:
            files.append(f"digits/{b}{c}")
            c = 0
    if c:
        files.append(f"digits/h-{c}" if counted else f"digits/{c}")
    if what and (a or b or c):
        files.append(what)
    return files


def number_files(text: str, method: str) -> list[str] | None:
    """en_say_general_count: the files for `text` (digits and commas, at most 9 digits)."""
    digits = text.replace(",", "")
    if not digits.isdigit() or len(digits) > 9:
        return None  # "Parse Error!"
    if method == "iterated":
        return [f"digits/{d}" for d in digits]
    value = int(digits)
    if value == 0:
        return ["digits/0"]
    places = [(value // 10**x) % 10 for x in range(9)]
    counted = method == "counted"
    return [
        *_group(places[8], places[7], places[6], False, "digits/million"),
        *_group(places[5], places[4], places[3], False, "digits/thousand"),
        *_group(places[2], places[1], places[0], counted, None),
    ]


def say_string(arg: str) -> str:
    """`say_string <module>[.<ext>] <lang>[.<ext>] <type> <method> [<gender>] <text>`."""
    argv = arg.split()
    if len(argv) not in (5, 6):
        return USAGE
    module, _, ext = argv[0].partition(".")
    language, _, lang_ext = argv[1].partition(".")
    ext = ext or lang_ext or "wav"
    text = argv[-1]
    strip = text.startswith("~")
    text = text.removeprefix("~")
    say_type, method = argv[2].upper(), argv[3].lower()
    if (
        module != "en"
        or language != "en"
        or say_type not in COUNTING_TYPES
        or method not in METHODS
    ):
        return USAGE
    files = number_files(text, method)
    if not files:
        return USAGE
    said = "file_string://" + "!".join(f"{name}.{ext}" for name in files)
    return said[len("file_string://") :] if strip else said
