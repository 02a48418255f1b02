'use strict';
// The CommonJS entry point (`require('tessera-engine')`): the ES module package itself,
// loaded with require(esm), which the Node versions in `engines` have without a flag.
// One copy of the module serves both `import` and `require`, so classes and `instanceof`
// are the same whichever way a program loads it.
module.exports = require('../dist/ts/index.js');
