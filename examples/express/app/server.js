const express = require('express');

const app = express();
app.use(express.json());

app.get('/', (req, res) => {
  res.json({ hello: 'from Express on Lambda', ip: req.ip });
});

app.post('/echo', (req, res) => {
  res.json(req.body);
});

module.exports = { app };
