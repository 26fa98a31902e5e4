"""Kept so that `from taba.handlers.tab_type import TabType`, as code written
for the original client imports it, works unchanged."""
