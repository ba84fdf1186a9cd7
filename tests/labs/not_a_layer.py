"""A class that is not a layer: it has no backward."""


class NoBackward:
    def forward(self, a):
        return a
