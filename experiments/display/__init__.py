"""The HDR display formats and the web page (#21): their speed under load, the README's screenshot."""
