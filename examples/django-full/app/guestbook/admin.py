from django.contrib import admin

from guestbook.models import Entry


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin):
    list_display = ("name", "message", "created")
    search_fields = ("name", "message")
