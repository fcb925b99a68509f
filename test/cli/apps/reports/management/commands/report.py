import os
import sys

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Prints its words and the pid it ran in; exits with --exit."

    def add_arguments(self, parser):
        parser.add_argument("words", nargs="*")
        parser.add_argument("--exit", type=int, default=0)

    def handle(self, *args, **options):
        self.stdout.write(f"report: {' '.join(options['words'])} (pid {os.getpid()})")
        self.stderr.write("report: to stderr")
        if options["exit"]:
            sys.exit(options["exit"])
