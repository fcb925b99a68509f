from django.db import models


class BenchRow(models.Model):
    name = models.CharField(max_length=40)
    value = models.IntegerField()

    class Meta:
        app_label = "benchapp"
