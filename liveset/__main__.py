from liveset.cli import main

main()
