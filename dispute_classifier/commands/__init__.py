"""The composition root: the command line and the commands that wire the layers together
(classify, experiment, serve, monitor). Nothing below imports this package."""
