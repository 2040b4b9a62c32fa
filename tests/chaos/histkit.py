"""Building histories by hand for checker tests."""

from ember.chaos._history import History


class Script:
    """``s.op(process, f, key, value, start, end, result, type="ok", error=None)`` appends an
    invoke and, unless ``end`` is None, its completion; events are sorted by time at
    ``history()``."""

    def __init__(self):
        self.rows = []

    def op(self, process, f, key, value, start, end=None, result=None, type="ok", error=None):
        self.rows.append((start, 0, process, f, key, value, None, None))
        if end is not None:
            self.rows.append((end, 1, process, f, key, result, type, error))
        return self

    def history(self):
        h = History()
        open_ = {}
        for t, kind, process, f, key, value, type, error in sorted(
            self.rows, key=lambda r: (r[0], r[1])
        ):
            if kind == 0:
                open_[process] = h.invoke(process, f, key, value, t)
            else:
                h.complete(open_.pop(process), type, value, t, error=error)
        return h
