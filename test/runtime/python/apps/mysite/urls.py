"""
URL configuration for mysite project.

The `urlpatterns` list routes URLs to views. For more information please see:
    https://docs.djangoproject.com/en/5.2/topics/http/urls/
Examples:
Function views
    1. Add an import:  from my_app import views
    2. Add a URL to urlpatterns:  path('', views.home, name='home')
Class-based views
    1. Add an import:  from other_app.views import Home
    2. Add a URL to urlpatterns:  path('', Home.as_view(), name='home')
Including another URLconf
    1. Import the include() function: from django.urls import include, path
    2. Add a URL to urlpatterns:  path('blog/', include('blog.urls'))
"""
from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    path('admin/', admin.site.urls),
    path('echo/<path:rest>', views.echo, name='echo'),
    path('bytes', views.echo_bytes, name='bytes'),
    path('png', views.png, name='png'),
    path('text', views.text, name='text'),
    path('redirect', views.redirect_view, name='redirect'),
    path('cookies', views.cookies, name='cookies'),
    path('aws', views.aws, name='aws'),
    path('where', views.where, name='where'),
    path('boom', views.boom, name='boom'),
]
