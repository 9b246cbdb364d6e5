"""Interchange with other routers' configuration: HotWax Order Routing's group export read into
a `.route` file (`hotwax`). It produces source text that the checker then checks like any file;
it never reaches into the engine."""
