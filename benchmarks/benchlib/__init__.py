"""The side-by-side benchmark harness behind benchmarks/run.py.

prepare   finds Apache and wrk, installs what is missing, builds the venvs
servers   starts and stops each server under test (Apache, gunicorn)
load      runs wrk and samples the memory of a server's processes
report    medians, ratios, the Markdown table and the JSON
"""
