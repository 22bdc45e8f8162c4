"""The us-equity-cutover Pulumi program; the logic lives in components/program.py."""

from components.program import run_program

run_program()
