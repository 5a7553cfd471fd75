"""Listener groups -> language codes, never by a quiet default.

The paper groups listeners by native language and pairs a group with the stimuli of its
own language (``mono``), its second languages (``L2``) or any other (``cross``). A group
named ``zh`` listening to Mandarin stimuli (code ``cn``) must count as ``mono``, so every
group name is resolved to a language code here, in this order:

1. an explicit mapping (``group_languages``: the study's ``[human]`` option, or
   ``--group-language GROUP=LANG`` on the command line);
2. the group name is itself a language code of the stimuli (``cn``, ``de``, ``en``...),
   or one of the toolkit's language codes (:data:`LANGUAGE_CODES`) even when no stimulus
   is in that language (DE listeners on a test of CN and TJ speech);
3. a built-in alias (:data:`GROUP_ALIASES`: ``zh``/``zh-cn``/``mandarin``/``chinese`` ->
   ``cn``, ``german``/``deu``/``ger`` -> ``de``, ``english``/``eng`` -> ``en`` ...).

Anything else is a :class:`GroupError` that names the groups and says how to map them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from featstore.errors import CrosslingError, did_you_mean

GROUP_ALIASES: dict[str, str] = {
    **dict.fromkeys(("zh", "zh-cn", "zh_cn", "zh-hans", "cmn", "zho", "chi", "mandarin", "chinese",
                     "putonghua", "中文", "普通话", "汉语"), "cn"),
    **dict.fromkeys(("german", "deu", "ger", "deutsch", "de-de", "de_de"), "de"),
    **dict.fromkeys(("english", "eng", "en-us", "en-gb", "en_us", "en_gb"), "en"),
    **dict.fromkeys(("tianjin", "tianjinese", "tianjin dialect"), "tj"),
    **dict.fromkeys(("cantonese", "yue-hk", "zh-hk"), "yue"),
}
"""Built-in spellings of listener groups (lower case) and the paper's language code of each."""
LANGUAGE_CODES: tuple[str, ...] = ("cn", "de", "en", "tj", "yue")
"""Language codes of the toolkit's corpora; a group named by one is that language."""


class GroupError(CrosslingError, ValueError):
    """A listener group (or group column) that cannot be told apart from a mislabel."""


def normalise_group(name: object) -> str:
    """A group name as compared everywhere: stripped, lower case."""
    return str(name).strip().lower()


def resolve_group_languages(
    groups: Iterable[str],
    languages: Iterable[str],
    explicit: Mapping[str, str] | None = None,
    where: str = "listener groups",
) -> tuple[dict[str, str], list[str]]:
    """Language code of every group, and a note for every group resolved by an alias.

    Parameters
    ----------
    groups : group names found in the answers (``None``/empty ones are skipped)
    languages : language codes of the stimuli
    explicit : group -> language code given by the user (wins over everything)
    where : what the groups came from, for the messages (a file name)

    Raises
    ------
    GroupError
        Some groups are neither mapped, nor stimulus languages, nor built-in aliases.
    """
    langs = sorted({normalise_group(lang) for lang in languages if lang})
    mapped = {normalise_group(k): normalise_group(v) for k, v in (explicit or {}).items()}
    out: dict[str, str] = {}
    notes: list[str] = []
    unknown: list[str] = []
    for group in sorted({normalise_group(g) for g in groups if g is not None and str(g).strip()}):
        if group in mapped:
            out[group] = mapped[group]
        elif group in langs or group in LANGUAGE_CODES:
            out[group] = group
        elif group in GROUP_ALIASES:
            out[group] = GROUP_ALIASES[group]
            notes.append(f"group {group!r} taken as language {out[group]!r} (built-in alias)")
        else:
            unknown.append(group)
    if unknown:
        hints = "; ".join(f"{g!r}{did_you_mean(g, [*langs, *GROUP_ALIASES])}" for g in unknown)
        example = ", ".join(f"{g}=<code>" for g in unknown[:3])
        raise GroupError(
            f"{where}: listener group(s) {hints} are not a language of the stimuli "
            f"({', '.join(langs) or 'none'}) nor a known name of one; say which language each group "
            f"speaks natively: --group-language {example} (study config: [human] group_languages), "
            "or use the language codes as group names"
        )
    return out, notes
