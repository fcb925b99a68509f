// A Node request listener that records every request it serves.
const fs = require('fs');

exports.app = (req, res) => {
  fs.appendFileSync(process.env.REQUEST_LOG, `${req.method} ${req.url} ${process.pid}\n`);
  res.setHeader('content-type', 'text/plain');
  res.end(`pid ${process.pid}`);
};
