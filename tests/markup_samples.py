"""Text people type that looks like markup, shared by the renderer's tests and the service's."""

TYPED = "[点我](http://evil.example) **粗** `x`"
SHOWN = "［点我］(http://evil.example) ＊＊粗＊＊ ｀x｀"


def no_markup(content: str) -> bool:
    """Nothing of TYPED survives as syntax: no link, no bold, no code."""
    return "[点我](" not in content and "**粗**" not in content and "`x`" not in content
