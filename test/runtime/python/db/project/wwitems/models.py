from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=100, unique=True)
    value = models.IntegerField(default=0)


class Server(models.Model):
    """One row: the port of the server that ran the query, and whether it is a standby."""

    id = models.IntegerField(primary_key=True)
    port = models.IntegerField()
    standby = models.BooleanField()

    class Meta:
        managed = False
        db_table = "wwitems_server"
