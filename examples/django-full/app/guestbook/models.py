from django.db import models


class Entry(models.Model):
    name = models.CharField(max_length=100)
    message = models.CharField(max_length=500)
    created = models.DateTimeField(auto_now_add=True)

    def as_dict(self):
        return {"id": self.id, "name": self.name, "message": self.message, "created": self.created.isoformat()}
