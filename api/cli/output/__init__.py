"""Printers for kvctl's output formats (simple, json, fields, protobuf, table), one per module."""
