#!/usr/bin/env python
"""Django's command line for the guestbook, e.g. `python manage.py migrate` with the DB_* variables set."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guestbook.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
