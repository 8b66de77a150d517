"""A clock the tests advance by hand (``tune_budget(clock=...)``)."""


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now
