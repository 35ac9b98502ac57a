"""The composition root: builds the app from realtime/ and rest/, runs it (cli), and the dev tools.

Imports everything; nothing of realtime/, rest/ or db/ imports it."""
