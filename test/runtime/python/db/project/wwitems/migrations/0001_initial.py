from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Item",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("value", models.IntegerField(default=0)),
            ],
        ),
        migrations.RunSQL(
            "CREATE VIEW wwitems_server AS SELECT 1 AS id, inet_server_port() AS port, pg_is_in_recovery() AS standby",
            "DROP VIEW wwitems_server",
        ),
        migrations.CreateModel(
            name="Server",
            fields=[
                ("id", models.IntegerField(primary_key=True, serialize=False)),
                ("port", models.IntegerField()),
                ("standby", models.BooleanField()),
            ],
            options={"managed": False, "db_table": "wwitems_server"},
        ),
    ]
