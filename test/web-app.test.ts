import { WebApp, WebAppLanguage } from '../lib';

describe('WebApp', () => {
  test.each([
    [() => WebApp.wsgi('mysite.wsgi:application'), WebAppLanguage.PYTHON, 'wsgi', 'mysite.wsgi:application'],
    [() => WebApp.asgi('main:app'), WebAppLanguage.PYTHON, 'asgi', 'main:app'],
    [() => WebApp.asgi('pkg.api:factory.app'), WebAppLanguage.PYTHON, 'asgi', 'pkg.api:factory.app'],
    [() => WebApp.pythonHandler('app.handler'), WebAppLanguage.PYTHON, 'handler', 'app.handler'],
    [() => WebApp.nodeHandler('index.handler'), WebAppLanguage.NODE, 'handler', 'index.handler'],
    [() => WebApp.nodeHandler('dist/lambda.main'), WebAppLanguage.NODE, 'handler', 'dist/lambda.main'],
    [() => WebApp.nodeRequestListener('server.app'), WebAppLanguage.NODE, 'listener', 'server.app'],
    [() => WebApp.nodeRequestListener('build/server.default'), WebAppLanguage.NODE, 'listener', 'build/server.default'],
  ])('%#: parses a valid spec', (make, language, kind, spec) => {
    const app = make();
    expect(app.language).toBe(language);
    expect(app.kind).toBe(kind);
    expect(app.spec).toBe(spec);
  });

  test.each([
    [() => WebApp.wsgi('mysite.wsgi'), /WebApp.wsgi: cannot parse app spec 'mysite.wsgi'; expected module:attribute/],
    [() => WebApp.wsgi('mysite/wsgi.py:application'), /WebApp.wsgi: cannot parse app spec 'mysite\/wsgi.py:application'/],
    [() => WebApp.asgi(':app'), /WebApp.asgi: cannot parse app spec ':app'/],
    [() => WebApp.asgi('main:'), /WebApp.asgi: cannot parse app spec 'main:'/],
    [() => WebApp.asgi('1main:app'), /WebApp.asgi: cannot parse app spec '1main:app'/],
    [() => WebApp.pythonHandler('handler'), /WebApp.pythonHandler: cannot parse app spec 'handler'; expected module.function/],
    [() => WebApp.pythonHandler('app:handler'), /WebApp.pythonHandler: cannot parse app spec 'app:handler'/],
    [() => WebApp.nodeHandler('index'), /WebApp.nodeHandler: cannot parse app spec 'index'; expected path\/module.export/],
    [() => WebApp.nodeHandler('/opt/index.handler'), /WebApp.nodeHandler: cannot parse app spec '\/opt\/index.handler'/],
    [() => WebApp.nodeRequestListener('server.'), /WebApp.nodeRequestListener: cannot parse app spec 'server.'/],
    [() => WebApp.nodeRequestListener(''), /WebApp.nodeRequestListener: cannot parse app spec ''/],
  ])('%#: rejects a malformed spec with the value in the message', (make, message) => {
    expect(make).toThrow(message);
  });
});
